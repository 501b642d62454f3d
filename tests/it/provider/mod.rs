//! Providers of injected values: OpenBao against its own dev server.

mod file;
mod openbao;
