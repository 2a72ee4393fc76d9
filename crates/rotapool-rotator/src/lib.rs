#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
pub mod password;
mod rotator;
mod target;

pub use error::{RotationError, Step};
pub use rotator::{other_user, Rotator, Strategy, CLONE_SUFFIX, PASSWORD_LENGTH};
pub use target::RotationTarget;
