//! Background tasks owned by a store.

use tokio::task::JoinHandle;

/// Aborts the task when the last clone of the owning store is dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
