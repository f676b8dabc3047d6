//! OpenAI's chat-completions wire format: [`request`] is what clients send
//! and how it is validated, [`response`] what Warden answers (whole, or as
//! stream chunks).

pub mod request;
pub mod response;

pub use request::*;
pub use response::*;
