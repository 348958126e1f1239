//! The response body the client receives: upstream frames forwarded as they
//! arrive, observed on the way for usage and first-token time, with an idle
//! timeout. Streams end with an error event in the caller's protocol when the
//! upstream breaks or falls silent; the whole body is never buffered.

use crate::error::Reason;
use crate::exchange::{Exchange, Outcome};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use portcullis_core::proxy::Decision;
use portcullis_protocol::stream::StreamObserver;
use portcullis_protocol::{error, usage, Dialect};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Non-streamed bodies are copied up to this size to read their usage.
const USAGE_COPY_LIMIT: usize = 4 * 1024 * 1024;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Mode {
    Stream(StreamObserver),
    Plain { copy: BytesMut, overflow: bool },
}

pub struct ObservedBody {
    inner: crate::relay::UpstreamBody,
    mode: Mode,
    dialect: Dialect,
    status: u16,
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
    exchange: Exchange,
    ended: bool,
}

impl ObservedBody {
    pub fn new(
        inner: crate::relay::UpstreamBody,
        status: u16,
        dialect: Dialect,
        observer: Option<StreamObserver>,
        mut exchange: Exchange,
    ) -> Self {
        let idle_timeout = exchange.proxy.idle_timeout;
        let mode = match observer {
            Some(obs) => {
                exchange.stream_started();
                Mode::Stream(obs)
            }
            None => Mode::Plain {
                copy: BytesMut::new(),
                overflow: false,
            },
        };
        Self {
            inner,
            mode,
            dialect,
            status,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            exchange,
            ended: false,
        }
    }

    fn fail(
        &mut self,
        reason: Reason,
        message: &str,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.ended = true;
        let usage = match &self.mode {
            Mode::Stream(obs) => obs.usage(),
            Mode::Plain { .. } => None,
        };
        self.exchange.finish(
            Outcome {
                status: self.status,
                decision: if reason == Reason::PolicyBlocked {
                    Decision::Blocked
                } else {
                    Decision::Error
                },
                reason: Some(reason),
                usage,
            },
            Some(message),
        );
        match self.mode {
            // The client already has a 200 and a partial stream: end it with an
            // error event it can parse.
            Mode::Stream(_) => Poll::Ready(Some(Ok(Frame::data(error::sse_event(
                self.dialect,
                reason.kind(),
                message,
            ))))),
            Mode::Plain { .. } => Poll::Ready(Some(Err(message.to_owned().into()))),
        }
    }

    fn complete(&mut self) -> Option<Bytes> {
        self.ended = true;
        let (usage, tail) = match &mut self.mode {
            Mode::Stream(obs) => {
                let tail = obs.finish();
                self.exchange.findings.extend(obs.take_findings());
                (obs.usage(), tail)
            }
            Mode::Plain { copy, overflow } => (
                (!*overflow)
                    .then(|| usage::from_body(self.dialect, copy))
                    .flatten(),
                Bytes::new(),
            ),
        };
        self.exchange.finish(
            Outcome {
                status: self.status,
                decision: Decision::Allowed,
                reason: None,
                usage,
            },
            None,
        );
        (!tail.is_empty()).then_some(tail)
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let began = Instant::now();
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    };
                    this.exchange.response_bytes += data.len() as u64;
                    this.idle
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle_timeout);
                    let out = match &mut this.mode {
                        Mode::Stream(obs) => match obs.push(&data) {
                            Ok(observed) => {
                                this.exchange.findings.extend(obs.take_findings());
                                if let Some(why) = observed.stopped {
                                    return this.fail(Reason::PolicyBlocked, &why);
                                }
                                if observed.first_content && this.exchange.ttft.is_none() {
                                    this.exchange.ttft = Some(this.exchange.started.elapsed());
                                }
                                observed.forward
                            }
                            Err(e) => return this.fail(Reason::UpstreamBroken, &e.to_string()),
                        },
                        Mode::Plain { copy, overflow } => {
                            if !*overflow && copy.len() + data.len() <= USAGE_COPY_LIMIT {
                                copy.extend_from_slice(&data);
                            } else {
                                *overflow = true;
                            }
                            data
                        }
                    };
                    // With a known length the server stops polling after the last
                    // byte, so the exchange must end on the frame that ends it.
                    let out = if this.inner.is_end_stream() {
                        match this.complete() {
                            Some(tail) => [out, tail].concat().into(),
                            None => out,
                        }
                    } else {
                        out
                    };
                    this.exchange.overhead += began.elapsed();
                    if out.is_empty() {
                        if this.ended {
                            return Poll::Ready(None);
                        }
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(proxy = %this.exchange.proxy.name, error = %e, "upstream body failed");
                    return this.fail(
                        Reason::UpstreamBroken,
                        "the upstream connection broke mid-response",
                    );
                }
                Poll::Ready(None) => {
                    return match this.complete() {
                        Some(tail) => Poll::Ready(Some(Ok(Frame::data(tail)))),
                        None => Poll::Ready(None),
                    };
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let secs = this.idle_timeout.as_secs_f64();
                        return this.fail(
                            Reason::UpstreamIdle,
                            &format!("the upstream sent nothing for {secs} s"),
                        );
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.mode {
            // Streams may lose the stripped usage chunk or gain an error event.
            Mode::Stream(_) => http_body::SizeHint::default(),
            Mode::Plain { .. } => self.inner.size_hint(),
        }
    }
}
