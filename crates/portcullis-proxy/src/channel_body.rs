//! A response body fed by a task through a small bounded channel: the task reads
//! and checks the upstream, the client's body takes what it sends. A slow client
//! slows the upstream read instead of filling memory; a client that goes away
//! closes the channel, which ends the task and so the upstream request.

use bytes::Bytes;
use tokio::sync::mpsc;

/// The client's side of a relayed stream.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it, `capacity` chunks in flight.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|b| Ok(http_body::Frame::data(b))))
    }
}
