//! The websockets of the server: the cap per client address, the count of
//! open sockets, and the stop signal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};

use crate::transport::TransportLimits;

/// The websockets of the server: their caps, the count per client address,
/// and the stop signal. Shared by every upgrade handler.
pub(crate) struct Sockets {
    pub(super) limits: TransportLimits,
    /// Open sockets by client address; an address leaves the map when its
    /// last socket closes. Locked only to count, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Notified whenever the last socket closes.
    all_closed: Notify,
    /// Turns true when the server stops.
    pub(super) stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A socket's place in the count of its address; gives it back when dropped.
pub(super) struct Place {
    sockets: Arc<Sockets>,
    address: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
        if open.is_empty() {
            self.sockets.all_closed.notify_waiters();
        }
    }
}

impl Sockets {
    pub(crate) fn new(limits: TransportLimits, stop: watch::Receiver<bool>) -> Arc<Sockets> {
        Arc::new(Sockets {
            limits,
            open: Mutex::new(HashMap::new()),
            all_closed: Notify::new(),
            stop,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more socket from `address`, unless it has its share.
    pub(super) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Place> {
        let mut open = self.lock();
        let count = open.entry(address).or_insert(0);
        if *count >= self.limits.ws_max_per_address {
            return None;
        }
        *count += 1;
        Some(Place {
            sockets: self.clone(),
            address,
        })
    }

    /// Open sockets, all addresses together.
    pub(crate) fn open_count(&self) -> usize {
        self.lock().values().sum()
    }

    /// Waits until every socket has closed (after a stop, they close with 1001).
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }
}
