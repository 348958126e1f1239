//! Frames that arrive together leave together.
//!
//! hyper's client hands a response body over one frame at a time, through a
//! one-slot channel from the connection's task. A stream of a dozen SSE events
//! that came in one socket read would otherwise reach the client as a dozen
//! writes, each flushed on its own. [`Coalesced`] gathers what is ready: after a
//! data frame it lets the connection's task run once (one yield) and takes what
//! that produced, and it returns the data as soon as a yield brings nothing new.
//! A lone frame is late by one scheduler turn; nothing waits on a timer.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Turns given to the connection's task without a new frame before the data
/// goes: it may run on another worker thread, so one turn is often not enough.
const IDLE_YIELDS: u8 = 3;

/// Data gathered into one frame at most, so a fast stream still flows.
const GATHER_LIMIT: usize = 64 * 1024;

/// What came after the gathered data; returned on the next poll.
enum After<E> {
    Frame(Frame<Bytes>),
    Error(E),
    End,
}

pub struct Coalesced<B: Body> {
    inner: B,
    /// The first frame gathered, kept as is while it is the only one.
    first: Option<Bytes>,
    /// Two or more frames, concatenated.
    more: BytesMut,
    after: Option<After<B::Error>>,
    /// Yields in a row that brought nothing new.
    idle_yields: u8,
}

impl<B: Body<Data = Bytes> + Unpin> Coalesced<B>
where
    B::Error: Unpin,
{
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            first: None,
            more: BytesMut::new(),
            after: None,
            idle_yields: 0,
        }
    }

    fn held(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.more.len()
    }

    fn hold(&mut self, data: Bytes) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.more.extend_from_slice(&first);
        }
        self.more.extend_from_slice(&data);
    }

    fn release(&mut self) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.idle_yields = 0;
        let data = match self.first.take() {
            Some(first) => first,
            None => self.more.split().freeze(),
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// Returns the gathered data first and `after` on the next poll.
    fn then(&mut self, after: After<B::Error>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if self.held() == 0 {
            return Self::deliver(after);
        }
        self.after = Some(after);
        self.release()
    }

    fn deliver(after: After<B::Error>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Poll::Ready(match after {
            After::Frame(frame) => Some(Ok(frame)),
            After::Error(e) => Some(Err(e)),
            After::End => None,
        })
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Coalesced<B>
where
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(after) = this.after.take() {
            return Self::deliver(after);
        }
        loop {
            if this.held() >= GATHER_LIMIT {
                return this.release();
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.idle_yields = 0;
                        this.hold(data);
                        // A body of known length ends on its last byte: no wait.
                        if this.inner.is_end_stream() {
                            return this.release();
                        }
                    }
                    Err(frame) => return this.then(After::Frame(frame)),
                },
                Poll::Ready(Some(Err(e))) => return this.then(After::Error(e)),
                Poll::Ready(None) => return this.then(After::End),
                Poll::Pending if this.held() == 0 => return Poll::Pending,
                Poll::Pending if this.idle_yields < IDLE_YIELDS => {
                    // Let the connection's task decode what it has read already.
                    this.idle_yields += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return this.release(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.after.is_none() && self.held() == 0 && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.held() as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a failed step should stop the test"
    )]
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    /// A scripted body: each step is a frame, an error, or one `Pending`.
    enum Step {
        Data(&'static str),
        Trailers,
        Fail,
        Pending,
    }

    struct Script(VecDeque<Step>);

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            match self.0.pop_front() {
                None => Poll::Ready(None),
                Some(Step::Data(s)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(s))))),
                Some(Step::Trailers) => {
                    Poll::Ready(Some(Ok(Frame::trailers(http::HeaderMap::new()))))
                }
                Some(Step::Fail) => Poll::Ready(Some(Err("broken"))),
                Some(Step::Pending) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    /// What a client would receive, frame by frame: data as text, trailers as
    /// "<trailers>", an error as "<error>".
    async fn frames(steps: Vec<Step>) -> Vec<String> {
        let mut body = Coalesced::new(Script(steps.into()));
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => String::from_utf8(d.to_vec()).unwrap(),
                    Err(_) => "<trailers>".into(),
                },
                Err(_) => {
                    out.push("<error>".into());
                    break;
                }
            });
        }
        out
    }

    #[tokio::test]
    async fn frames_ready_together_leave_as_one() {
        use Step::*;
        // Pauses up to IDLE_YIELDS between frames are gathered over; one more
        // in a row releases what was gathered.
        let mut steps = vec![Data("a"), Data("b")];
        steps.extend((0..IDLE_YIELDS).map(|_| Pending));
        steps.push(Data("c"));
        steps.extend((0..=IDLE_YIELDS).map(|_| Pending));
        steps.push(Data("d"));
        assert_eq!(frames(steps).await, ["abc", "d"]);
    }

    #[tokio::test]
    async fn trailers_errors_and_the_end_follow_the_data_before_them() {
        use Step::*;
        assert_eq!(
            frames(vec![Data("a"), Data("b"), Trailers]).await,
            ["ab", "<trailers>"]
        );
        assert_eq!(
            frames(vec![Data("a"), Pending, Data("b"), Fail]).await,
            ["ab", "<error>"]
        );
        assert_eq!(frames(vec![Pending, Data("x")]).await, ["x"]);
        assert!(frames(vec![]).await.is_empty());
    }

    #[tokio::test]
    async fn a_fast_stream_is_cut_at_the_gather_limit() {
        let big: &'static str = Box::leak("x".repeat(GATHER_LIMIT / 2).into_boxed_str());
        let got = frames((0..5).map(|_| Step::Data(big)).collect()).await;
        let sizes: Vec<usize> = got.iter().map(String::len).collect();
        assert_eq!(sizes, [GATHER_LIMIT, GATHER_LIMIT, GATHER_LIMIT / 2]);
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_returned_on_its_last_byte() {
        let full = http_body_util::Full::new(Bytes::from_static(b"whole"));
        let mut body = Coalesced::new(full);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => assert_eq!(f.into_data().unwrap(), "whole"),
            _ => panic!("not returned at once"),
        }
        assert!(body.is_end_stream());
    }
}
