//! Call controls → AMI actions: a pure planner (no tokio, no sockets, no clock).
//!
//! [`plan`] turns one domain [`Control`] into the ordered AMI actions ([`Step`]s) that carry it
//! out on Asterisk, using the tracker's view of live channels ([`ChannelDirectory`]) and the
//! site's dialplan facts ([`DialplanConfig`]). Each step says how its reply is recognised
//! ([`Completion`], the one definition the AMI client uses too), how long to wait for it, and
//! whether it may fail without failing the control. Executing a plan is the AMI client's job
//! (`calldesk_ami::AmiPbx`).
//!
//! # Mapping, control by control
//!
//! | control | AMI | completion |
//! |---|---|---|
//! | Originate (click-to-call) | `Originate Channel: <TECH>/<operator> Context Exten: <to> Priority: 1 [CallerID] Timeout Async: true ChannelId` | `AsyncEvent("OriginateResponse")` |
//! | Hangup, one operator | `Hangup Channel: <operator's channel>` | `Response` |
//! | Hangup, whole call | `Hangup Channel: <c>` for every live channel of the call (each best effort) | `Response` |
//! | Blind transfer | `BlindTransfer Channel: <operator's channel> Context Exten: <to>` | `Response` |
//! | Attended transfer | `Atxfer Channel: <operator's channel> Exten: <to> Context` | `Response` |
//! | Hold on | `Redirect Channel: <customer> → <hold context>,<customer exten>` with `ExtraChannel: <operator> → <hold context>,<operator exten>` | `Response` |
//! | Hold off | `Bridge Channel1: <customer> Channel2: <operator> Tone: no` | `Response` |
//! | Record start / stop | `MixMonitor Channel: <customer> File Options` / `StopMixMonitor Channel` | `Response` |
//! | Record mute / unmute | `MixMonitorMute Channel Direction: both State: 1` / `State: 0` | `Response` |
//! | Monitor | `Originate Channel: <TECH>/<supervisor> Application: ChanSpy Data: <operator's exact channel>,<options> Async: true ChannelId` | `AsyncEvent("OriginateResponse")` |
//! | Touch tones | `PlayDTMF Channel: <customer> Digit: <d> Duration: 120`, one action per tone, in order | `Response` |
//! | Queue pause | `QueuePause Interface: <TECH>/<ext> [Queue] Paused: true\|false [Reason]` | `Response` |
//!
//! Why these choices:
//!
//! - **Originate** is always `Async: true`: a synchronous Originate blocks the whole AMI
//!   session (no events) until the phone answers (ami.md §0.5, seen in the captures). The
//!   `ChannelId` is chosen by the caller of [`plan`] (so plans are deterministic in tests); it
//!   becomes the operator leg's `Uniqueid` and so the new call's `Linkedid`, which lets the
//!   caller name the call before Asterisk reports it. The reply is `OriginateResponse` with the
//!   same `ActionID`: `Response: Success` (`Reason: 4`) or `Failure` with `Reason` 0 (channel
//!   could not be created), 1 (hung up), 3 (no answer), 5 (busy), 8 (congestion).
//! - **Blind transfer uses `BlindTransfer` on the operator's channel**, not a `Redirect` of the
//!   customer's channel (what capture d1 did). `BlindTransfer` is what the operator's phone
//!   would do itself: the operator's bridge peer (the customer) goes to `<to>`, the operator
//!   leaves, and Asterisk raises a `BlindTransfer` event (`Transferer*`/`Transferee*`), so the
//!   tracker records a transfer from evidence instead of guessing from a bridge teardown. It
//!   also needs no knowledge of which channel is the customer's (Local chains, queues). It
//!   needs the operator's channel to be bridged (else `Transfer invalid`) and Asterisk 12+.
//! - **Attended transfer uses `Atxfer`**, which queues the `atxfer` feature code and the digits
//!   on the operator's channel: it needs an `atxfer` code in features.conf **and** transfer
//!   rights on the call (Dial/Queue option `t`/`T`). Sites without them set
//!   [`DialplanConfig::attended_transfer`] to false, and the capability is reported off.
//! - **Hold: `Redirect` into a helper context, `Bridge` back.** chan_sip and chan_pjsip have no
//!   AMI hold action (ami.md §11). The alternatives and why not:
//!   `Park` drops the operator's leg (capture f2: 101 is hung up) and resuming means ringing the
//!   operator's phone again (`Originate` into `ParkedCall`), which is not hold;
//!   `PJSIPNotify` asking the phone to hold is the most faithful but device-specific (vendor
//!   `Event:` payloads, phone must allow remote control) and PJSIP-only. The dual `Redirect`
//!   works with any phone and both channel drivers: both legs leave the bridge together
//!   (Asterisk waits for both, `AST_FLAG_BRIDGE_DUAL_REDIRECT_WAIT`), the customer hears music
//!   on hold, the operator's leg waits silently; `Bridge` joins them again. Costs: a new bridge
//!   (and CDR leg) after the hold, and bridge features from the original `Dial` options (e.g.
//!   the `t`/`T` transfer rights `Atxfer` needs) do not carry over. It needs this dialplan
//!   helper (names configurable through [`HoldConfig`]):
//!
//!   ```text
//!   [calldesk-hold]
//!   exten => customer,1,Answer()
//!    same => n,MusicOnHold(default)
//!    same => n,Hangup()
//!   exten => operator,1,Answer()
//!    same => n,Wait(3600)
//!    same => n,Hangup()
//!   ```
//!
//!   Without a configured helper ([`DialplanConfig::hold`] is `None`) the capability is off
//!   and hold is refused with `NotSupported`, never faked.
//! - **Recording** uses `MixMonitor` on the customer's channel (it follows the customer through
//!   transfers; option `b` records only while bridged, so music on hold is not recorded), file
//!   `<directory>/<prefix><call id>.<format>` with the call id reduced to `[A-Za-z0-9._-]`.
//!   `MixMonitorMute Direction: both` is the only "pause" (it writes silence); `PauseMonitor`
//!   belongs to `res_monitor`, removed in Asterisk 21.
//! - **Monitor** originates the supervisor's phone into `ChanSpy` on the operator's **exact**
//!   channel (`SIP/101-0000002a`): ChanSpy's first argument is a name *prefix* (`SIP/101` would
//!   also match `SIP/1010-…`), and option `u` makes it an exact channel name or Uniqueid.
//!   Default options: listen `bqESu`, whisper `bqwESu`, barge `BbqESu` (`b` bridged calls only,
//!   `q` no beep or announcement, `w` whisper to the operator, `B` talk to both, `E` end when the
//!   spied channel hangs up, `S` end when nothing is left to spy on).
//! - **Touch tones** use `PlayDTMF` on the **customer's** channel: "send digit to channel" means
//!   out of Asterisk towards that channel's far end, so the customer (or the IVR the operator
//!   called) hears them, as if the operator's phone had sent RFC 4733 digits. One action per
//!   tone, each waited for, keeps the order; a refusal stops the rest. `PlayDTMF` raises no
//!   `DTMFBegin`/`DTMFEnd` event (those come from frames read or written, not from the
//!   channel driver's digit call), so nothing else in the tracker changes.
//! - **Queue pause** addresses the queue member by its interface, `<TECH>/<ext>` by default or a
//!   template such as `Local/{ext}@from-queue/n` for sites whose members are Local channels.
//!
//! # AMI privileges (least privilege for the AMI user in manager.conf)
//!
//! Asterisk lets an action run when the user's `write` classes share **one** class with the
//! action's: `write = call,originate,agent,reporting` covers Originate and Monitor
//! (`originate`), Hangup, BlindTransfer, Atxfer, Redirect, Bridge, StopMixMonitor and
//! MixMonitorMute and PlayDTMF (`call`), QueuePause (`agent`), and the client's resync `CoreShowChannels`
//! (`reporting`); `QueueStatus` and `Ping` need none. **`MixMonitor` (start recording) needs
//! `system`**, which also unlocks powerful actions; grant it only where recording from the app
//! is wanted, otherwise leave [`DialplanConfig::recording`] unset (capability off). Originate
//! with `Application: ChanSpy` needs only `originate` (`System`/`Exec`-like applications would
//! need `system`). `read = call,agent,system,dialplan` gives the events the tracker and the
//! client use (`OriginateResponse` is a `call` event; `Shutdown`/`FullyBooted` are `system`;
//! the `VarSet` of `MIXMONITOR_FILENAME`, where recording file names come from, is `dialplan`).
//!
//! # Input safety
//!
//! Nothing unvalidated reaches a header: extensions and numbers are validated newtypes, queue
//! names and pause reasons are refused with [`ControlError::Invalid`] when they hold control or
//! invisible characters, channel names reported by the PBX are checked before they are echoed
//! back (a `,` in a name would add ChanSpy options), and the configuration's names are checked
//! on every plan. [`Outgoing`] rejects CR/LF as the last line of defence.

use std::time::Duration;

use calldesk_ami_proto::{EncodeError, Outgoing};
use calldesk_calls::{
    CallId, Capabilities, Control, ControlError, Destination, Extension, MonitorMode, RecordAction,
    TransferKind,
};

use crate::ChannelDirectory;

/// How the reply to an action is recognised (one definition for the planner and the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    /// One `Response:` message with the action's `ActionID`.
    Response,
    /// `Response: Success` with `EventList: start`, list items with the same `ActionID`, and the
    /// event that carries `EventList: Complete` (or `cancelled`).
    EventList,
    /// The `Response:` first, then the named event carrying the same `ActionID`
    /// (`OriginateResponse` for an `Async: true` Originate).
    AsyncEvent(&'static str),
}

impl Completion {
    /// The completion of an `Async: true` Originate.
    pub const ORIGINATE: Self = Self::AsyncEvent("OriginateResponse");
}

/// The channel driver of the operators' phones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelTech {
    /// chan_sip (`SIP/101`); removed in Asterisk 21.
    Sip,
    /// chan_pjsip (`PJSIP/101`).
    #[default]
    Pjsip,
}

impl ChannelTech {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sip => "SIP",
            Self::Pjsip => "PJSIP",
        }
    }
}

/// What the operator's phone shows while a click-to-call rings it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OriginateCallerId {
    /// `CallerID: <number being called>` (capture h1): the operator sees whom they call. The
    /// outbound dialplan must then set the caller id the carrier sees (most do).
    #[default]
    Destination,
    /// No `CallerID` header: the phone shows what the dialplan gives it.
    Omit,
}

/// The dialplan helper for hold (see the module docs for the snippet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldConfig {
    /// Context of the helper, e.g. `calldesk-hold`.
    pub context: String,
    /// Extension that plays music on hold to the customer, e.g. `customer`.
    pub customer_exten: String,
    /// Extension where the operator's leg waits, e.g. `operator`.
    pub operator_exten: String,
}

impl Default for HoldConfig {
    fn default() -> Self {
        Self {
            context: "calldesk-hold".to_owned(),
            customer_exten: "customer".to_owned(),
            operator_exten: "operator".to_owned(),
        }
    }
}

/// Where and how `MixMonitor` writes recordings started from the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Absolute directory on the Asterisk host, e.g. `/var/spool/asterisk/monitor`.
    pub directory: String,
    /// File name prefix, e.g. `calldesk-`.
    pub prefix: String,
    /// File format (extension), e.g. `wav`.
    pub format: String,
    /// MixMonitor options, e.g. `b` (record only while bridged).
    pub options: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            directory: "/var/spool/asterisk/monitor".to_owned(),
            prefix: "calldesk-".to_owned(),
            format: "wav".to_owned(),
            options: "b".to_owned(),
        }
    }
}

/// ChanSpy options per monitor mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpyOptions {
    pub listen: String,
    pub whisper: String,
    pub barge: String,
}

impl Default for SpyOptions {
    fn default() -> Self {
        Self {
            listen: "bqESu".to_owned(),
            whisper: "bqwESu".to_owned(),
            barge: "BbqESu".to_owned(),
        }
    }
}

impl SpyOptions {
    fn for_mode(&self, mode: MonitorMode) -> &str {
        match mode {
            MonitorMode::Listen => &self.listen,
            MonitorMode::Whisper => &self.whisper,
            MonitorMode::Barge => &self.barge,
        }
    }
}

/// The site's dialplan facts the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanConfig {
    /// The operators' channel driver.
    pub tech: ChannelTech,
    /// Context where operators' calls are dialled (click-to-call, transfers), e.g.
    /// `from-internal`.
    pub context: String,
    /// Replaces the `+` of an E.164 number before dialling, e.g. `00` (`+4930…` → `004930…`,
    /// as the lab's `_0X.` outbound pattern expects). `None` dials `+4930…` as is.
    pub international_prefix: Option<String>,
    /// How long a click-to-call or spy call rings the operator's (supervisor's) phone.
    pub originate_timeout: Duration,
    /// How long to wait for Asterisk's reply to any other action.
    pub action_timeout: Duration,
    pub originate_caller_id: OriginateCallerId,
    /// The site has an `atxfer` feature code and gives operators transfer rights (`t`/`T`).
    pub attended_transfer: bool,
    /// The hold helper; `None`: hold is not offered.
    pub hold: Option<HoldConfig>,
    /// Recording from the app; `None`: not offered (e.g. the dialplan records every call, or
    /// the AMI user has no `system` write class).
    pub recording: Option<RecordingConfig>,
    pub spy: SpyOptions,
    /// Queue member interface with `{ext}` for the extension, e.g. `Local/{ext}@from-queue/n`;
    /// `None`: `<TECH>/<ext>`.
    pub queue_interface: Option<String>,
}

impl Default for DialplanConfig {
    fn default() -> Self {
        Self {
            tech: ChannelTech::default(),
            context: "from-internal".to_owned(),
            international_prefix: None,
            originate_timeout: Duration::from_secs(30),
            action_timeout: Duration::from_secs(10),
            originate_caller_id: OriginateCallerId::default(),
            attended_transfer: true,
            hold: None,
            recording: None,
            spy: SpyOptions::default(),
            queue_interface: None,
        }
    }
}

/// What the controls can do with this configuration.
pub fn capabilities(cfg: &DialplanConfig) -> Capabilities {
    Capabilities {
        originate: true,
        hangup: true,
        blind_transfer: true,
        attended_transfer: cfg.attended_transfer,
        hold: cfg.hold.is_some(),
        record: cfg.recording.is_some(),
        monitor: true,
        dtmf: true,
        queue_pause: true,
    }
}

/// How long each touch tone sounds (`PlayDTMF Duration`): what a desk phone sends for a short
/// press, long enough for any IVR to detect. Asterisk holds the AMI reply for this long, so the
/// tones of one control go out one after another with natural gaps.
pub const DTMF_TONE: Duration = Duration::from_millis(120);

/// Set on an Originate step: who is rung first and the id of the channel being created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateStep {
    /// The extension whose phone rings first (the operator; the supervisor for a spy call).
    pub ringing: Extension,
    /// The `ChannelId` sent: the new channel's `Uniqueid`.
    pub channel_id: String,
    /// True when the originated call is a call of its own (click-to-call), false for a spy leg.
    pub new_call: bool,
}

/// One AMI action of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The action, without `ActionID` (the client assigns it).
    pub action: Outgoing,
    pub completion: Completion,
    /// How long to wait for the completion.
    pub timeout: Duration,
    /// A refusal of this step does not stop the plan (e.g. hanging up a leg that already went
    /// away with the first one). A plan whose every step was refused still fails.
    pub best_effort: bool,
    pub originate: Option<OriginateStep>,
}

/// The ordered AMI actions that carry out one control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// Plans `control`. `new_channel_id` is asked for a fresh `ChannelId` for each Originate (at
/// most once per plan); it must be unique on the PBX and use only `A-Z a-z 0-9 . _ -`.
pub fn plan<D: ChannelDirectory + ?Sized>(
    control: &Control,
    dir: &D,
    cfg: &DialplanConfig,
    new_channel_id: &mut dyn FnMut() -> String,
) -> Result<Plan, ControlError> {
    if !capabilities(cfg).allows(control) {
        return Err(ControlError::NotSupported(control.name()));
    }
    check_config(cfg)?;
    let step = |action: Outgoing| Step {
        action,
        completion: Completion::Response,
        timeout: cfg.action_timeout,
        best_effort: false,
        originate: None,
    };
    let steps = match control {
        Control::Originate { operator, to } => {
            let channel_id = checked_channel_id(new_channel_id())?;
            let dial = dial_string(to, cfg);
            let mut a = action("Originate")?;
            push(
                &mut a,
                "Channel",
                &format!("{}/{operator}", cfg.tech.as_str()),
            )?;
            push(&mut a, "Context", &cfg.context)?;
            push(&mut a, "Exten", &dial)?;
            push(&mut a, "Priority", "1")?;
            if cfg.originate_caller_id == OriginateCallerId::Destination {
                push(&mut a, "CallerID", &dial)?;
            }
            vec![originate_step(
                a,
                cfg,
                OriginateStep {
                    ringing: operator.clone(),
                    channel_id,
                    new_call: true,
                },
            )?]
        }
        Control::Hangup {
            call,
            operator: Some(operator),
        } => {
            let channel = operator_channel(dir, call, operator)?;
            vec![step(
                action("Hangup")?
                    .header("Channel", &channel)
                    .map_err(invalid)?,
            )]
        }
        Control::Hangup {
            call,
            operator: None,
        } => {
            let channels = dir.call_channels(call);
            if channels.is_empty() {
                return Err(ControlError::NoSuchCall(call.clone()));
            }
            let mut steps = Vec::with_capacity(channels.len());
            for channel in channels {
                let channel = checked_channel(channel)?;
                let mut s = step(
                    action("Hangup")?
                        .header("Channel", &channel)
                        .map_err(invalid)?,
                );
                // Hanging up one leg usually takes the others with it.
                s.best_effort = true;
                steps.push(s);
            }
            steps
        }
        Control::Transfer {
            call,
            operator,
            to,
            kind,
        } => {
            let channel = operator_channel(dir, call, operator)?;
            let dial = dial_string(to, cfg);
            let a = match kind {
                TransferKind::Blind => {
                    let mut a = action("BlindTransfer")?;
                    push(&mut a, "Channel", &channel)?;
                    push(&mut a, "Context", &cfg.context)?;
                    push(&mut a, "Exten", &dial)?;
                    a
                }
                // Header order as capture e sent it.
                TransferKind::Attended => {
                    let mut a = action("Atxfer")?;
                    push(&mut a, "Channel", &channel)?;
                    push(&mut a, "Exten", &dial)?;
                    push(&mut a, "Context", &cfg.context)?;
                    a
                }
            };
            vec![step(a)]
        }
        Control::Hold { call, operator, on } => {
            let Some(hold) = &cfg.hold else {
                return Err(ControlError::NotSupported(control.name()));
            };
            let operator_chan = operator_channel(dir, call, operator)?;
            let customer = customer_channel(dir, call)?;
            if customer == operator_chan {
                return Err(ControlError::Invalid(format!(
                    "extension {operator} is the only party of call {call}; there is nobody to put on hold"
                )));
            }
            let a = if *on {
                let mut a = action("Redirect")?;
                push(&mut a, "Channel", &customer)?;
                push(&mut a, "Context", &hold.context)?;
                push(&mut a, "Exten", &hold.customer_exten)?;
                push(&mut a, "Priority", "1")?;
                push(&mut a, "ExtraChannel", &operator_chan)?;
                push(&mut a, "ExtraContext", &hold.context)?;
                push(&mut a, "ExtraExten", &hold.operator_exten)?;
                push(&mut a, "ExtraPriority", "1")?;
                a
            } else {
                let mut a = action("Bridge")?;
                push(&mut a, "Channel1", &customer)?;
                push(&mut a, "Channel2", &operator_chan)?;
                push(&mut a, "Tone", "no")?;
                a
            };
            vec![step(a)]
        }
        Control::Record { call, action: what } => {
            let Some(rec) = &cfg.recording else {
                return Err(ControlError::NotSupported(control.name()));
            };
            let channel = customer_channel(dir, call)?;
            let a = match what {
                RecordAction::Start => {
                    let mut a = action("MixMonitor")?;
                    push(&mut a, "Channel", &channel)?;
                    push(&mut a, "File", &recording_file(rec, call))?;
                    if !rec.options.is_empty() {
                        push(&mut a, "Options", &rec.options)?;
                    }
                    a
                }
                RecordAction::Stop => action("StopMixMonitor")?
                    .header("Channel", &channel)
                    .map_err(invalid)?,
                RecordAction::Mute | RecordAction::Unmute => {
                    let mut a = action("MixMonitorMute")?;
                    push(&mut a, "Channel", &channel)?;
                    push(&mut a, "Direction", "both")?;
                    let state = if *what == RecordAction::Mute {
                        "1"
                    } else {
                        "0"
                    };
                    push(&mut a, "State", state)?;
                    a
                }
            };
            vec![step(a)]
        }
        Control::Monitor {
            call,
            operator,
            supervisor,
            mode,
        } => {
            if supervisor == operator {
                return Err(ControlError::Invalid(format!(
                    "extension {operator} cannot monitor its own call"
                )));
            }
            let channel = operator_channel(dir, call, operator)?;
            let channel_id = checked_channel_id(new_channel_id())?;
            let mut a = action("Originate")?;
            push(
                &mut a,
                "Channel",
                &format!("{}/{supervisor}", cfg.tech.as_str()),
            )?;
            push(&mut a, "Application", "ChanSpy")?;
            push(
                &mut a,
                "Data",
                &format!("{channel},{}", cfg.spy.for_mode(*mode)),
            )?;
            push(
                &mut a,
                "CallerID",
                &format!("\"{} {operator}\" <{operator}>", mode.as_str()),
            )?;
            vec![originate_step(
                a,
                cfg,
                OriginateStep {
                    ringing: supervisor.clone(),
                    channel_id,
                    new_call: false,
                },
            )?]
        }
        Control::Dtmf {
            call,
            operator,
            digits,
        } => {
            let operator_chan = operator_channel(dir, call, operator)?;
            let customer = customer_channel(dir, call)?;
            if customer == operator_chan {
                return Err(ControlError::Invalid(format!(
                    "extension {operator} is the only party of call {call}; there is nobody to send tones to"
                )));
            }
            let mut steps = Vec::with_capacity(digits.as_str().len());
            for digit in digits.chars() {
                let mut a = action("PlayDTMF")?;
                push(&mut a, "Channel", &customer)?;
                push(&mut a, "Digit", digit.encode_utf8(&mut [0; 4]))?;
                push(&mut a, "Duration", &millis(DTMF_TONE))?;
                steps.push(step(a));
            }
            steps
        }
        Control::QueuePause {
            operator,
            queue,
            paused,
            reason,
        } => {
            let mut a = action("QueuePause")?;
            push(&mut a, "Interface", &queue_interface(cfg, operator))?;
            if let Some(queue) = queue {
                check_text("queue name", queue, 128)?;
                push(&mut a, "Queue", queue)?;
            }
            push(&mut a, "Paused", if *paused { "true" } else { "false" })?;
            if let Some(reason) = reason {
                check_text("pause reason", reason, 256)?;
                push(&mut a, "Reason", reason)?;
            }
            vec![step(a)]
        }
    };
    Ok(Plan { steps })
}

/// Finishes an `Originate` the same way for every control: asynchronous (a synchronous one
/// stalls the whole AMI session), with its ring timeout and the chosen `ChannelId`.
fn originate_step(
    mut action: Outgoing,
    cfg: &DialplanConfig,
    originate: OriginateStep,
) -> Result<Step, ControlError> {
    push(&mut action, "Timeout", &millis(cfg.originate_timeout))?;
    push(&mut action, "Async", "true")?;
    push(&mut action, "ChannelId", &originate.channel_id)?;
    Ok(Step {
        action,
        completion: Completion::ORIGINATE,
        // The OriginateResponse comes once the phone answered or gave up ringing.
        timeout: cfg.originate_timeout + cfg.action_timeout,
        best_effort: false,
        originate: Some(originate),
    })
}

fn invalid(e: EncodeError) -> ControlError {
    ControlError::Invalid(format!("cannot build the AMI action: {e}"))
}

fn action(name: &str) -> Result<Outgoing, ControlError> {
    Outgoing::action(name).map_err(invalid)
}

fn push(a: &mut Outgoing, key: &str, value: &str) -> Result<(), ControlError> {
    a.push(key, value).map_err(invalid)
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// What Asterisk dials for `to`.
pub fn dial_string(to: &Destination, cfg: &DialplanConfig) -> String {
    match (to, &cfg.international_prefix) {
        (Destination::Number(n), Some(prefix)) => match n.e164().strip_prefix('+') {
            Some(rest) => format!("{prefix}{rest}"),
            None => n.e164().to_owned(),
        },
        _ => to.dial_string().to_owned(),
    }
}

/// Why an Originate failed, from `OriginateResponse`'s `Reason` (`AST_CONTROL_*` codes).
pub fn originate_failure(reason: Option<&str>) -> String {
    match reason.map(str::trim) {
        Some("0") => "unavailable".to_owned(),
        Some("1") => "hung up".to_owned(),
        Some("3") => "no answer".to_owned(),
        Some("5") => "busy".to_owned(),
        Some("8") => "congestion".to_owned(),
        Some(code)
            if !code.is_empty() && code.len() <= 4 && code.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("failed (reason {code})")
        }
        _ => "failed".to_owned(),
    }
}

/// The queue member interface of `ext`.
pub fn queue_interface(cfg: &DialplanConfig, ext: &Extension) -> String {
    match &cfg.queue_interface {
        Some(template) => template.replace("{ext}", ext.as_str()),
        None => format!("{}/{ext}", cfg.tech.as_str()),
    }
}

fn recording_file(rec: &RecordingConfig, call: &CallId) -> String {
    let id: String = call
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}/{}{id}.{}",
        rec.directory.trim_end_matches('/'),
        rec.prefix,
        rec.format
    )
}

fn operator_channel<D: ChannelDirectory + ?Sized>(
    dir: &D,
    call: &CallId,
    ext: &Extension,
) -> Result<String, ControlError> {
    match dir.operator_channel(call, ext) {
        Some(channel) => checked_channel(channel),
        None if dir.call_channels(call).is_empty() => Err(ControlError::NoSuchCall(call.clone())),
        None => Err(ControlError::NotInCall {
            call: call.clone(),
            extension: ext.clone(),
        }),
    }
}

fn customer_channel<D: ChannelDirectory + ?Sized>(
    dir: &D,
    call: &CallId,
) -> Result<String, ControlError> {
    match dir.customer_channel(call) {
        Some(channel) => checked_channel(channel),
        None => Err(ControlError::NoSuchCall(call.clone())),
    }
}

/// A channel name the PBX reported, checked before it is sent back in a header (and, for
/// ChanSpy, inside an argument list where `,` separates options).
fn checked_channel(name: String) -> Result<String, ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != ',' && !is_invisible(c));
    if ok {
        Ok(name)
    } else {
        Err(ControlError::Invalid(format!(
            "the PBX reported a channel name that cannot be used in an action: {:?}",
            name.chars().take(80).collect::<String>()
        )))
    }
}

fn checked_channel_id(id: String) -> Result<String, ControlError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(id)
    } else {
        Err(ControlError::Invalid(format!(
            "channel id {:?} is not usable: use 1-64 characters from A-Z a-z 0-9 . _ -",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// Zero-width and bidirectional formatting characters: invisible in a UI and in logs.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFF}'
    )
}

/// Free text the user typed (a queue name, a pause reason).
fn check_text(what: &str, value: &str, max: usize) -> Result<(), ControlError> {
    let refuse = |why: String| {
        Err(ControlError::Invalid(format!(
            "{what} {:?} {why}",
            value.chars().take(80).collect::<String>()
        )))
    };
    if value.is_empty() {
        return refuse("is empty; leave it out instead".to_owned());
    }
    let len = value.chars().count();
    if len > max {
        return refuse(format!(
            "is {len} characters long; at most {max} are allowed"
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() || (c.is_whitespace() && c != ' ') || is_invisible(c))
    {
        return refuse(format!(
            "contains the non-printable character U+{:04X}; use printable characters only",
            u32::from(c)
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return refuse("starts or ends with a space; remove it".to_owned());
    }
    Ok(())
}

/// A dialplan name from the configuration (context, extension, options).
fn check_name(what: &str, value: &str, extra: &[char]) -> Result<(), ControlError> {
    let ok = !value.is_empty()
        && value.len() <= 79
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || extra.contains(&c)
        });
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "dialplan configuration: {what} {value:?} is not usable; use 1-79 characters from A-Z a-z 0-9 _ - .{}",
            extra.iter().map(|c| format!(" {c}")).collect::<String>()
        )))
    }
}

fn check_config(cfg: &DialplanConfig) -> Result<(), ControlError> {
    check_name("context", &cfg.context, &[])?;
    if let Some(prefix) = &cfg.international_prefix
        && (prefix.len() > 8 || !prefix.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(ControlError::Invalid(format!(
            "dialplan configuration: international prefix {prefix:?} must be at most 8 digits"
        )));
    }
    if let Some(hold) = &cfg.hold {
        check_name("hold context", &hold.context, &[])?;
        check_name("hold customer extension", &hold.customer_exten, &[])?;
        check_name("hold operator extension", &hold.operator_exten, &[])?;
    }
    if let Some(rec) = &cfg.recording {
        let dir_ok = rec.directory.starts_with('/')
            && rec.directory.len() <= 200
            && rec
                .directory
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
            && !rec.directory.split('/').any(|part| part == "..");
        if !dir_ok {
            return Err(ControlError::Invalid(format!(
                "dialplan configuration: recording directory {:?} must be an absolute path of A-Z a-z 0-9 / _ - . without `..`",
                rec.directory
            )));
        }
        if !rec.prefix.is_empty() {
            check_name("recording prefix", &rec.prefix, &[])?;
        }
        check_name("recording format", &rec.format, &[])?;
        if !rec.options.is_empty() {
            check_name("MixMonitor options", &rec.options, &['(', ')'])?;
        }
    }
    for opts in [&cfg.spy.listen, &cfg.spy.whisper, &cfg.spy.barge] {
        // No `,`: the options are ChanSpy's second argument.
        check_name("ChanSpy options", opts, &['(', ')'])?;
    }
    if let Some(template) = &cfg.queue_interface
        && (!template.contains("{ext}")
            || template.len() > 120
            || !template.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '/' | '@' | '_' | '-' | '.' | '{' | '}')
            }))
    {
        return Err(ControlError::Invalid(format!(
            "dialplan configuration: queue interface template {template:?} must contain {{ext}} and only A-Z a-z 0-9 / @ _ - ."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use calldesk_calls::{NumberPlan, PhoneNumber};

    use super::*;

    #[derive(Default)]
    struct Map {
        /// call → (extension, channel) legs; the first is the customer's.
        calls: HashMap<String, Vec<(Option<&'static str>, String)>>,
    }

    impl Map {
        fn with_call() -> Self {
            let mut m = Self::default();
            m.calls.insert(
                "1795260104.84".to_owned(),
                vec![
                    (None, "SIP/trunk-00000026".to_owned()),
                    (Some("101"), "SIP/101-00000027".to_owned()),
                ],
            );
            m
        }
    }

    impl ChannelDirectory for Map {
        fn operator_channel(&self, call: &CallId, extension: &Extension) -> Option<String> {
            self.calls
                .get(call.as_str())?
                .iter()
                .find(|(e, _)| *e == Some(extension.as_str()))
                .map(|(_, c)| c.clone())
        }
        fn customer_channel(&self, call: &CallId) -> Option<String> {
            self.calls
                .get(call.as_str())?
                .first()
                .map(|(_, c)| c.clone())
        }
        fn call_channels(&self, call: &CallId) -> Vec<String> {
            self.calls
                .get(call.as_str())
                .map(|legs| legs.iter().map(|(_, c)| c.clone()).collect())
                .unwrap_or_default()
        }
    }

    fn ext(s: &str) -> Extension {
        Extension::new(s).unwrap()
    }

    fn call() -> CallId {
        CallId::new("1795260104.84").unwrap()
    }

    fn number(s: &str) -> PhoneNumber {
        NumberPlan::new("DE").unwrap().parse(s).unwrap()
    }

    fn sip() -> DialplanConfig {
        DialplanConfig {
            tech: ChannelTech::Sip,
            ..DialplanConfig::default()
        }
    }

    fn full() -> DialplanConfig {
        DialplanConfig {
            hold: Some(HoldConfig::default()),
            recording: Some(RecordingConfig::default()),
            ..sip()
        }
    }

    fn run(control: &Control, cfg: &DialplanConfig) -> Result<Plan, ControlError> {
        let mut n = 0;
        plan(control, &Map::with_call(), cfg, &mut || {
            n += 1;
            format!("calldesk-test-{n}")
        })
    }

    /// The headers of every step, as `Key: Value` lines.
    fn lines(plan: &Plan) -> Vec<Vec<String>> {
        plan.steps
            .iter()
            .map(|s| {
                s.action
                    .headers()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect()
            })
            .collect()
    }

    fn one(control: Control, cfg: &DialplanConfig) -> (Step, Vec<String>) {
        let plan = run(&control, cfg).unwrap();
        assert_eq!(plan.steps.len(), 1, "{plan:?}");
        let l = lines(&plan).remove(0);
        (plan.steps.into_iter().next().unwrap(), l)
    }

    #[test]
    fn click_to_call_is_an_async_originate_with_a_chosen_channel_id() {
        let cfg = DialplanConfig {
            international_prefix: Some("00".to_owned()),
            ..sip()
        };
        let (step, l) = one(
            Control::Originate {
                operator: ext("101"),
                to: Destination::Number(number("+4930123456")),
            },
            &cfg,
        );
        assert_eq!(
            l,
            [
                "Action: Originate",
                "Channel: SIP/101",
                "Context: from-internal",
                "Exten: 004930123456",
                "Priority: 1",
                "CallerID: 004930123456",
                "Timeout: 30000",
                "Async: true",
                "ChannelId: calldesk-test-1",
            ]
        );
        assert_eq!(step.completion, Completion::AsyncEvent("OriginateResponse"));
        assert_eq!(step.timeout, Duration::from_secs(40));
        assert_eq!(
            step.originate,
            Some(OriginateStep {
                ringing: ext("101"),
                channel_id: "calldesk-test-1".to_owned(),
                new_call: true
            })
        );
        // PJSIP, E.164 kept, no caller id.
        let cfg = DialplanConfig {
            originate_caller_id: OriginateCallerId::Omit,
            ..DialplanConfig::default()
        };
        let (_, l) = one(
            Control::Originate {
                operator: ext("101"),
                to: Destination::Number(number("+4930123456")),
            },
            &cfg,
        );
        assert_eq!(l[1], "Channel: PJSIP/101");
        assert_eq!(l[3], "Exten: +4930123456");
        assert!(!l.iter().any(|h| h.starts_with("CallerID")));
    }

    #[test]
    fn hangup_of_one_leg_or_of_every_leg() {
        let (step, l) = one(
            Control::Hangup {
                call: call(),
                operator: Some(ext("101")),
            },
            &sip(),
        );
        assert_eq!(l, ["Action: Hangup", "Channel: SIP/101-00000027"]);
        assert_eq!(step.completion, Completion::Response);
        assert!(!step.best_effort);
        let plan = run(
            &Control::Hangup {
                call: call(),
                operator: None,
            },
            &sip(),
        )
        .unwrap();
        assert_eq!(
            lines(&plan),
            [
                ["Action: Hangup", "Channel: SIP/trunk-00000026"],
                ["Action: Hangup", "Channel: SIP/101-00000027"]
            ]
        );
        assert!(plan.steps.iter().all(|s| s.best_effort));
    }

    #[test]
    fn transfers_act_on_the_operators_channel() {
        let (_, l) = one(
            Control::Transfer {
                call: call(),
                operator: ext("101"),
                to: Destination::Extension(ext("102")),
                kind: TransferKind::Blind,
            },
            &sip(),
        );
        assert_eq!(
            l,
            [
                "Action: BlindTransfer",
                "Channel: SIP/101-00000027",
                "Context: from-internal",
                "Exten: 102"
            ]
        );
        // Exactly what capture e sent.
        let (_, l) = one(
            Control::Transfer {
                call: call(),
                operator: ext("101"),
                to: Destination::Extension(ext("102")),
                kind: TransferKind::Attended,
            },
            &sip(),
        );
        assert_eq!(
            l,
            [
                "Action: Atxfer",
                "Channel: SIP/101-00000027",
                "Exten: 102",
                "Context: from-internal"
            ]
        );
        let no_atxfer = DialplanConfig {
            attended_transfer: false,
            ..sip()
        };
        assert!(!capabilities(&no_atxfer).attended_transfer);
        assert_eq!(
            run(
                &Control::Transfer {
                    call: call(),
                    operator: ext("101"),
                    to: Destination::Extension(ext("102")),
                    kind: TransferKind::Attended,
                },
                &no_atxfer
            ),
            Err(ControlError::NotSupported("attended_transfer"))
        );
    }

    #[test]
    fn hold_is_a_dual_redirect_and_unhold_a_bridge_and_off_without_the_helper() {
        let hold = |on| Control::Hold {
            call: call(),
            operator: ext("101"),
            on,
        };
        let (_, l) = one(hold(true), &full());
        assert_eq!(
            l,
            [
                "Action: Redirect",
                "Channel: SIP/trunk-00000026",
                "Context: calldesk-hold",
                "Exten: customer",
                "Priority: 1",
                "ExtraChannel: SIP/101-00000027",
                "ExtraContext: calldesk-hold",
                "ExtraExten: operator",
                "ExtraPriority: 1"
            ]
        );
        let (_, l) = one(hold(false), &full());
        assert_eq!(
            l,
            [
                "Action: Bridge",
                "Channel1: SIP/trunk-00000026",
                "Channel2: SIP/101-00000027",
                "Tone: no"
            ]
        );
        assert!(!capabilities(&sip()).hold);
        assert_eq!(
            run(&hold(true), &sip()),
            Err(ControlError::NotSupported("hold"))
        );
    }

    #[test]
    fn touch_tones_are_one_play_dtmf_per_digit_on_the_customer_channel() {
        let dtmf = |digits: &str| Control::Dtmf {
            call: call(),
            operator: ext("101"),
            digits: calldesk_calls::DtmfDigits::new(digits).unwrap(),
        };
        let plan = run(&dtmf("1#b"), &sip()).unwrap();
        assert_eq!(
            lines(&plan),
            ["1", "#", "B"].map(|d| vec![
                "Action: PlayDTMF".to_owned(),
                "Channel: SIP/trunk-00000026".to_owned(),
                format!("Digit: {d}"),
                "Duration: 120".to_owned(),
            ])
        );
        assert!(plan.steps.iter().all(|s| !s.best_effort
            && s.completion == Completion::Response
            && s.originate.is_none()));
        assert!(capabilities(&sip()).dtmf);
        let stranger = Control::Dtmf {
            call: call(),
            operator: ext("105"),
            digits: calldesk_calls::DtmfDigits::new("1").unwrap(),
        };
        assert_eq!(run(&stranger, &sip()).unwrap_err().code(), "not_in_call");
    }

    #[test]
    fn recording_controls_are_mixmonitor_actions_on_the_customer_channel() {
        let rec = |action| Control::Record {
            call: call(),
            action,
        };
        let (_, l) = one(rec(RecordAction::Start), &full());
        assert_eq!(
            l,
            [
                "Action: MixMonitor",
                "Channel: SIP/trunk-00000026",
                "File: /var/spool/asterisk/monitor/calldesk-1795260104.84.wav",
                "Options: b"
            ]
        );
        let (_, l) = one(rec(RecordAction::Stop), &full());
        assert_eq!(l, ["Action: StopMixMonitor", "Channel: SIP/trunk-00000026"]);
        let (_, l) = one(rec(RecordAction::Mute), &full());
        assert_eq!(
            l,
            [
                "Action: MixMonitorMute",
                "Channel: SIP/trunk-00000026",
                "Direction: both",
                "State: 1"
            ]
        );
        let (_, l) = one(rec(RecordAction::Unmute), &full());
        assert_eq!(l[3], "State: 0");
        assert_eq!(
            run(&rec(RecordAction::Start), &sip()),
            Err(ControlError::NotSupported("record"))
        );
        // A call id cannot walk out of the directory.
        let file = recording_file(
            &RecordingConfig::default(),
            &CallId::new("../../etc/x").unwrap(),
        );
        assert_eq!(file, "/var/spool/asterisk/monitor/calldesk-.._.._etc_x.wav");
    }

    #[test]
    fn monitor_spies_on_the_exact_operator_channel() {
        let spy = |mode| Control::Monitor {
            call: call(),
            operator: ext("101"),
            supervisor: ext("103"),
            mode,
        };
        let (step, l) = one(spy(MonitorMode::Listen), &sip());
        assert_eq!(
            l,
            [
                "Action: Originate",
                "Channel: SIP/103",
                "Application: ChanSpy",
                "Data: SIP/101-00000027,bqESu",
                "CallerID: \"listen 101\" <101>",
                "Timeout: 30000",
                "Async: true",
                "ChannelId: calldesk-test-1"
            ]
        );
        assert_eq!(step.completion, Completion::ORIGINATE);
        assert_eq!(
            step.originate.map(|o| (o.ringing, o.new_call)),
            Some((ext("103"), false))
        );
        let (_, l) = one(spy(MonitorMode::Whisper), &sip());
        assert_eq!(l[3], "Data: SIP/101-00000027,bqwESu");
        let (_, l) = one(spy(MonitorMode::Barge), &sip());
        assert_eq!(l[3], "Data: SIP/101-00000027,BbqESu");
        let own = Control::Monitor {
            call: call(),
            operator: ext("101"),
            supervisor: ext("101"),
            mode: MonitorMode::Listen,
        };
        assert!(matches!(run(&own, &sip()), Err(ControlError::Invalid(_))));
    }

    #[test]
    fn queue_pause_matches_capture_k3() {
        let (_, l) = one(
            Control::QueuePause {
                operator: ext("103"),
                queue: Some("support".to_owned()),
                paused: true,
                reason: Some("Lunch".to_owned()),
            },
            &sip(),
        );
        assert_eq!(
            l,
            [
                "Action: QueuePause",
                "Interface: SIP/103",
                "Queue: support",
                "Paused: true",
                "Reason: Lunch"
            ]
        );
        let cfg = DialplanConfig {
            queue_interface: Some("Local/{ext}@from-queue/n".to_owned()),
            ..sip()
        };
        let (_, l) = one(
            Control::QueuePause {
                operator: ext("103"),
                queue: None,
                paused: false,
                reason: None,
            },
            &cfg,
        );
        assert_eq!(
            l,
            [
                "Action: QueuePause",
                "Interface: Local/103@from-queue/n",
                "Paused: false"
            ]
        );
    }

    #[test]
    fn bad_text_is_refused_with_a_clear_message() {
        let pause = |queue: &str, reason: &str| Control::QueuePause {
            operator: ext("103"),
            queue: Some(queue.to_owned()),
            paused: true,
            reason: Some(reason.to_owned()),
        };
        for (queue, reason, says) in [
            ("support\r\nAction: Hangup", "x", "U+000D"),
            ("support", "lunch\u{7}", "U+0007"),
            ("sup\u{200B}port", "x", "U+200B"),
            ("support", "tab\there", "U+0009"),
            ("", "x", "empty"),
            (" support", "x", "space"),
        ] {
            let err = run(&pause(queue, reason), &sip()).unwrap_err();
            assert!(
                matches!(&err, ControlError::Invalid(m) if m.contains(says)),
                "{queue:?}/{reason:?}: {err}"
            );
        }
        let long = "x".repeat(300);
        assert!(matches!(
            run(&pause("support", &long), &sip()),
            Err(ControlError::Invalid(m)) if m.contains("at most 256")
        ));
        // Unicode letters are fine.
        assert!(run(&pause("поддержка", "обед"), &sip()).is_ok());
    }

    #[test]
    fn unknown_calls_and_legs_and_bad_channel_names_are_refused() {
        let other = CallId::new("1.1").unwrap();
        let hangup = |call: CallId, ext_: &str| Control::Hangup {
            call,
            operator: Some(ext(ext_)),
        };
        assert_eq!(
            run(&hangup(other.clone(), "101"), &sip()),
            Err(ControlError::NoSuchCall(other.clone()))
        );
        assert_eq!(
            run(
                &Control::Hangup {
                    call: other.clone(),
                    operator: None
                },
                &sip()
            ),
            Err(ControlError::NoSuchCall(other.clone()))
        );
        assert_eq!(
            run(&hangup(call(), "102"), &sip()),
            Err(ControlError::NotInCall {
                call: call(),
                extension: ext("102")
            })
        );
        assert_eq!(
            run(
                &Control::Record {
                    call: other.clone(),
                    action: RecordAction::Start
                },
                &full()
            ),
            Err(ControlError::NoSuchCall(other))
        );
        // A channel name with a comma would smuggle ChanSpy options in.
        let mut dir = Map::with_call();
        dir.calls.insert(
            "9.9".to_owned(),
            vec![(Some("101"), "SIP/101-1,B".to_owned())],
        );
        let spy = Control::Monitor {
            call: CallId::new("9.9").unwrap(),
            operator: ext("101"),
            supervisor: ext("103"),
            mode: MonitorMode::Listen,
        };
        let err = plan(&spy, &dir, &sip(), &mut || "id".to_owned()).unwrap_err();
        assert!(matches!(err, ControlError::Invalid(m) if m.contains("channel name")));
        // A bad generated id is refused too.
        let originate = Control::Originate {
            operator: ext("101"),
            to: Destination::Extension(ext("102")),
        };
        let err = plan(&originate, &dir, &sip(), &mut || "a b".to_owned()).unwrap_err();
        assert!(matches!(err, ControlError::Invalid(m) if m.contains("channel id")));
    }

    #[test]
    fn originate_failure_reasons() {
        assert_eq!(originate_failure(Some("5")), "busy");
        assert_eq!(originate_failure(Some("3")), "no answer");
        assert_eq!(originate_failure(Some("8")), "congestion");
        assert_eq!(originate_failure(Some("0")), "unavailable");
        assert_eq!(originate_failure(Some("42")), "failed (reason 42)");
        assert_eq!(originate_failure(Some("x\r\ny")), "failed");
        assert_eq!(originate_failure(None), "failed");
    }

    #[test]
    fn bad_configuration_is_refused() {
        let originate = Control::Originate {
            operator: ext("101"),
            to: Destination::Extension(ext("102")),
        };
        for cfg in [
            DialplanConfig {
                context: "from internal".to_owned(),
                ..sip()
            },
            DialplanConfig {
                international_prefix: Some("+0".to_owned()),
                ..sip()
            },
            DialplanConfig {
                spy: SpyOptions {
                    listen: "q,B".to_owned(),
                    ..SpyOptions::default()
                },
                ..sip()
            },
            DialplanConfig {
                recording: Some(RecordingConfig {
                    directory: "/var/../etc".to_owned(),
                    ..RecordingConfig::default()
                }),
                ..sip()
            },
            DialplanConfig {
                queue_interface: Some("SIP/103".to_owned()),
                ..sip()
            },
        ] {
            let err = run(&originate, &cfg).unwrap_err();
            assert!(
                matches!(&err, ControlError::Invalid(m) if m.starts_with("dialplan configuration")),
                "{err}"
            );
        }
        assert_eq!(capabilities(&full()), Capabilities::all());
    }
}
