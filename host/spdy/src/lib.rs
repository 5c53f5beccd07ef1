//! SPDY/3.1, as Kubernetes' streaming protocols speak it: the frames and
//! their header compression ([`frame`]), and the server side of a session
//! ([`session`]) that hands each stream the client opens to its caller as
//! a byte pipe. `kubectl port-forward` speaks it directly after an HTTP
//! upgrade, or tunnelled in WebSocket messages.

mod dictionary;
pub mod frame;
pub mod session;

pub use frame::{Frame, FrameError, Headers};
pub use session::{SessionConfig, SessionError, Stream, serve};
