//! Fixtures shared by the topic modules.

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, NewTenant, PbxConfig};
use calldesk_wire::{CallRecord, CallStateView, CallerCard, CardRef, HubCall};

pub fn tid(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// A demo tenant with this id and number; returns its clientId.
pub async fn demo_tenant(store: &CentralStore, id: &str, number: &str) -> String {
    store
        .add_tenant(&NewTenant {
            id: tid(id),
            name: format!("{id} Ltd"),
            number: number.into(),
            region: "RU".into(),
            pbx: PbxConfig::Demo,
        })
        .await
        .unwrap()
}

/// An inbound call from `from` to 0367 started at `started` (RFC 3339), in `state`.
pub fn hub_call(tenant: &str, id: &str, started: &str, state: CallStateView) -> HubCall {
    let ended = state == CallStateView::Ended;
    HubCall {
        record: CallRecord {
            id: id.into(),
            direction: "inbound".into(),
            from: "+74951234567".into(),
            to: "0367".into(),
            status: ended.then(|| "missed".into()),
            answered_by: vec![],
            transfers: vec![],
            monitors: vec![],
            queue: None,
            ring_secs: None,
            talk_secs: None,
            hangup_cause: None,
            recordings: vec![],
            started_at: Some(started.into()),
            answered_at: None,
            ended_at: ended.then(|| started.into()),
        },
        tenant: tenant.into(),
        state,
        operator: None,
        rang: vec![],
        on_hold: false,
        monitoring: vec![],
        caller: None,
        notes: vec![],
        disposition: None,
        tags: vec![],
        recording_states: vec![],
    }
}

pub fn card(
    number: &str,
    contact: Option<(i64, &str)>,
    company: Option<(i64, &str)>,
) -> CallerCard {
    let r = |(id, name): (i64, &str)| CardRef {
        id,
        name: name.into(),
    };
    CallerCard {
        number: number.into(),
        contact: contact.map(r),
        company: company.map(r),
    }
}

/// This machine's clock (unix ms).
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
