//! One module per `kakeya` subcommand.

pub mod codec;
pub mod env_probe;
pub mod model_info;
pub mod sleep;
