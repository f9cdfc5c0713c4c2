//! Caller cards by number, cached for a short while: the webhook handler looks the customer's
//! number up while the webhook is being stored, so the runtime usually finds the card ready
//! and the pop does not wait for a query. Contact or company writes clear the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use calldesk_calls::TenantId;
use calldesk_wire::CallerCard;

use crate::Hub;

const TTL: Duration = Duration::from_secs(60);
/// Above this many entries the cache starts over (a burst of new numbers, not a leak).
const MAX_ENTRIES: usize = 100_000;

type Key = (TenantId, String);

#[derive(Debug, Default)]
pub struct CardCache {
    map: Mutex<HashMap<Key, (Instant, Option<CallerCard>)>>,
}

impl CardCache {
    fn get(&self, key: &Key) -> Option<Option<CallerCard>> {
        let map = self.map.lock().ok()?;
        let (at, card) = map.get(key)?;
        (at.elapsed() < TTL).then(|| card.clone())
    }

    fn put(&self, key: Key, card: Option<CallerCard>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, (Instant::now(), card));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }

    /// Looks the card of a number as a webhook carries it (`raw`, not yet normalised) up ahead
    /// of the runtime; a number seen before costs neither a parse nor a query.
    pub async fn prefetch_raw(&self, hub: &Hub, tenant: &TenantId, region: &str, raw: &str) {
        let raw_key = (tenant.clone(), format!("raw:{raw}"));
        if self.get(&raw_key).is_some() {
            return;
        }
        let e164 = calldesk_calls::NumberPlan::new(region)
            .ok()
            .and_then(|plan| plan.parse(raw).ok())
            .map(|n| n.e164().to_owned());
        let card = match &e164 {
            Some(e164) => self.lookup(hub, tenant, e164).await,
            None => None,
        };
        self.put(raw_key, card);
    }

    /// The card of `e164` in `tenant` (cached, else looked up). A failed lookup is logged and
    /// gives no card: the pop goes out without one rather than late.
    pub async fn lookup(&self, hub: &Hub, tenant: &TenantId, e164: &str) -> Option<CallerCard> {
        let key = (tenant.clone(), e164.to_owned());
        if let Some(card) = self.get(&key) {
            return card;
        }
        match hub.store().identify(tenant, e164).await {
            Ok(card) => {
                self.put(key, card.clone());
                card
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "caller identification failed; the pop goes out without a card");
                None
            }
        }
    }
}
