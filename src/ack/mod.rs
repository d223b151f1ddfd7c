//! Inbound acknowledgements: the tokens that bind a link or a call to one
//! alert, and (in `crate::http`) the endpoints people and providers reach.

pub mod token;
