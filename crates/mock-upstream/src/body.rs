//! The one response body type: whole JSON bodies and SSE streams alike.
//!
//! A hand-rolled [`Body`] rather than a channel fed by a spawned task: the
//! connection owns and polls it, so when the client goes away the body is
//! dropped with the connection and nothing is left running (stalls included).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How long a stall lasts if the client never gives up.
pub(crate) const STALL: Duration = Duration::from_secs(3600);

/// Pause before aborting, so hyper flushes the events already queued: a
/// body error discards whatever is still buffered, and the point of
/// `mock-disconnect` is a stream that breaks after some events arrived.
const ABORT_FLUSH: Duration = Duration::from_millis(5);

/// Errors that end a connection on purpose (fault modes) or because the
/// client broke it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MockError {
    /// `mock-disconnect`: hyper resets the connection/stream on this.
    #[error("mock-disconnect: connection dropped on purpose")]
    Disconnect,
    /// `mock-stall` waited the full hour.
    #[error("mock-stall: gave up after {0:?}")]
    StallEnded(Duration),
    /// The request body could not be read (client went away mid-upload).
    #[error("request body: {0}")]
    RequestBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What happens after the last queued frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// End the body normally.
    Finish,
    /// Keep the response open without sending anything (`mock-stall-stream`).
    Stall,
    /// Fail the body so hyper aborts the connection (`mock-disconnect`).
    Abort,
}

pub(crate) struct MockBody {
    frames: VecDeque<Bytes>,
    delay: Duration,
    end: End,
    /// Whole bodies report their exact size, so hyper sends content-length;
    /// streams do not, so they go out chunked (HTTP/1.1) as SSE does upstream.
    streaming: bool,
    done: bool,
    /// Reused for every wait of this body, to allocate the timer once.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl MockBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            frames: VecDeque::from([bytes]),
            delay: Duration::ZERO,
            end: End::Finish,
            streaming: false,
            done: false,
            sleep: None,
            armed: false,
        }
    }

    /// Each frame is its own body frame, `delay` before each.
    pub(crate) fn stream(frames: Vec<Bytes>, delay: Duration, end: End) -> Self {
        Self {
            frames: frames.into(),
            delay,
            end,
            streaming: true,
            done: false,
            sleep: None,
            armed: false,
        }
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>, wait: Duration) -> Poll<()> {
        if !self.armed {
            let deadline = Instant::now() + wait;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        if let Some(sleep) = &mut self.sleep {
            ready!(sleep.as_mut().poll(cx));
        }
        self.armed = false;
        Poll::Ready(())
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = MockError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, MockError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.frames.is_empty() {
            if !this.delay.is_zero() {
                let delay = this.delay;
                ready!(this.poll_wait(cx, delay));
            }
            return Poll::Ready(this.frames.pop_front().map(|f| Ok(Frame::data(f))));
        }
        match this.end {
            End::Finish => {}
            End::Stall => ready!(this.poll_wait(cx, STALL)),
            End::Abort => {
                ready!(this.poll_wait(cx, ABORT_FLUSH));
                this.done = true;
                return Poll::Ready(Some(Err(MockError::Disconnect)));
            }
        }
        this.done = true;
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.frames.is_empty() && self.end == End::Finish)
    }

    fn size_hint(&self) -> SizeHint {
        if self.streaming {
            return SizeHint::default();
        }
        SizeHint::with_exact(self.frames.iter().map(|f| f.len() as u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_body_has_exact_size() {
        let body = MockBody::full(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }

    #[tokio::test]
    async fn stream_yields_frames_then_aborts() {
        let frames = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let mut body = MockBody::stream(frames, Duration::from_millis(1), End::Abort);
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "b"
        );
        assert!(matches!(
            body.frame().await,
            Some(Err(MockError::Disconnect))
        ));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn stall_holds_the_body_open() {
        let mut body = MockBody::stream(vec![Bytes::from_static(b"a")], Duration::ZERO, End::Stall);
        assert!(body.frame().await.is_some());
        let waited = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(waited.is_err(), "stalled body must not end");
    }
}
