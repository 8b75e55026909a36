//! (filled in by the Core API work)

use crate::api::Route;

pub static ROUTES: &[Route] = &[];
