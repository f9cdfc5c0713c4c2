//! # A fake Mango Office VPBX (`calldesk_sim::mango`)
//!
//! Fakes the Mango Office "VPBX API" of `shared/protocols/mango-vpbx.md` on loopback, for tests
//! and demos of `calldesk-mango` and the hub:
//!
//! * **Webhooks** (Mango → us): `/events/call`, `/events/summary`, `/events/recording`,
//!   `/events/record/added`, `/events/sms` and `/result/<command>`, POSTed as signed
//!   urlencoded forms (`vpbx_api_key`, `sign`, `json`) to `target + path`, with the shapes and
//!   value styles of the reference's §6 (base64-looking ids, numeric `seq`/`timestamp`/codes,
//!   string extensions, `dct:{"type":0}`, `acd_group`, `taken_from_call_id`, `transfer`,
//!   `was_transferred`, `hold_initiator`, top-level `line_number` in the summary).
//! * **Commands and queries** (us → Mango) under `/vpbx/`: `commands/callback`,
//!   `callback_group`, `call/hangup`, `route`, `transfer`, `call/hold/on`, `recording/start`,
//!   `play/start`, `sms`, `config/users/request`, `stats/request`, `stats/result`,
//!   `queries/recording/post`; signature and key checked, the documented result codes, the
//!   2-minute lock-out after repeated 3xxx errors (401), the per-method rates (429), recording
//!   downloads through a 302 to a one-shot link, the stats CSV after a 204.
//!
//! ## Layout
//!
//! * [`scenario`]: scripted calls ([`MangoScenario`]) and the **pure** [`render`], which plays one
//!   on a fresh fake VPBX and returns its timed webhooks ([`Delivery`]); [`to_jsonl`] writes the
//!   replay-file format of `calldesk mango replay`.
//! * `engine` (private): the pure VPBX: calls (`entry_id`), legs (`call_id`), recordings,
//!   timed steps; time is an input. Both [`render`] and the server drive it, so a scripted call
//!   played on the server sends what [`render`] returns (ids and times aside).
//! * [`server`]: [`FakeMango`] (axum on `127.0.0.1:0`): the endpoints, a clock task that runs
//!   the PBX on a scaled timeline ([`FakeMangoConfig::sim_second`] of wall time per simulated
//!   second, 20 ms by default), and a delivery task ([`DeliveryMode`]: in order, shuffled with
//!   seeded random delays, or each webhook twice).
//! * [`ids`]: deterministic Mango-style ids from a seed ([`Ids`]).
//! * [`model`]: employees, phone behaviours, timings, the fake recording bytes.
//!
//! ## What the commands do
//!
//! | command | effect |
//! |---|---|
//! | `callback` | `/result/callback`; leg 1 rings the employee (their [`PhoneBehaviour`]); answered, leg 1 ends 1100 and leg 2 (`taken_from_call_id`) rings the number (its behaviour: Connected, 1111 or 1121); an unknown `from.extension` gets 3330 |
//! | `call/hangup` | the leg ends 1181; the call ends (summary) when no leg is left; unknown or ended `call_id`: 4101 |
//! | `transfer` `blind` | the leg ends (1120, or 1110 when `from` initiates) with `was_transferred` on the other party; a new leg with `transfer:"blind"` and the `command_id` rings the target; unanswered, a `return_blind` leg rings the initiator |
//! | `transfer` `hold` | the leg goes OnHold (`hold_initiator`); a `consultative` leg rings the target; when it ends the held leg is Connected again (joining is not modelled) |
//! | `call/hold/on` | OnHold with `hold_initiator`, Connected again after [`Timings::hold_s`] |
//! | `recording/start` | `/events/recording` Started (with `command_id`); Completed (1000, Cloud) when the leg ends, `/events/record/added` [`Timings::record_added_s`] after the summary; 4102 while recording; 3330 for a party not on the leg |
//! | `route`, `play/start` | 1000 and `/result/<command>` for a live leg (4101 otherwise); the call is not changed |
//! | `sms` | 1000, `/result/sms`, then `/events/sms` with `reason` 1000 |
//! | `callback_group` | 1000 and `/result/callback_group`; no call is played |
//!
//! Every command answers HTTP 200 `{"result":N}` (success and refusals: 4xxx, 3320/3330 for
//! objects not found). Malformed requests (not POST 3101, missing form field or JSON field
//! 3103, JSON that is not JSON or does not fit the command 3400, wrong key 3105, bad signature
//! 3102, stats dates not numbers 3104, stats window over a month 3111, `call_party` with
//! `from`/`to` 3100) answer HTTP 420 `{"code":N}` and count towards the lock-out.
//!
//! ## Not faked
//!
//! Other endpoints (extended JSON stats, `calls_connect`, `transfer_cancel`, address book,
//! pre-signed recording links, `/result/stat` webhooks), `/events/dtmf`, `/events/record/tagged`,
//! `/ping`, queues (`location:"queue"`), call-tracking numbers (`dct` is always type 0),
//! schedules, `sip_call_id`, `callback_initiator`, `task_id`, recording `Continued`, short
//! recordings (4002), billing (2xxx) and server (5xxx) errors. Simulated time runs faster than
//! real time, so webhook timestamps drift ahead of the wall clock.

pub mod ids;
pub mod model;
pub mod scenario;
pub mod server;

mod engine;

pub use engine::{LiveCall, LiveLeg};
pub use ids::Ids;
pub use model::{Delivery, Employee, PhoneBehaviour, Timings, demo_employees, recording_audio};
pub use scenario::{MangoScenario, render, render_with, to_jsonl};
pub use server::{
    DeliveredWebhook, DeliveryMode, FailedDelivery, FakeMango, FakeMangoConfig, FakeMangoError,
    ReceivedRequest, loopback_client_builder,
};
