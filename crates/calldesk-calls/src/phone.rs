//! Phone numbers and call parties.
//!
//! PBXs send caller ids in every shape: `+74951234567`, `84951234567`, `74951234567`,
//! `(495) 123-45-67`, an internal extension `101`, or `anonymous`. [`NumberPlan::party`] keeps the
//! raw text and adds what it could recognise; [`NumberPlan::parse`] is the strict form for input
//! that must be a phone number (click-to-call).

use crate::ids::Extension;
use phonenumber::{Mode, country};

/// Why a text is not a usable phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("unknown region `{0}`; use a two-letter ISO country code such as RU or DE")]
    UnknownRegion(String),
    #[error(
        "`{0}` is not a phone number: only digits, spaces, '+', '-', '(', ')' and '.' are allowed"
    )]
    BadCharacters(String),
    #[error("`{0}` is not a valid phone number for region {1}")]
    Invalid(String, String),
}

/// How numbers without a country code are read: the call centre's home region.
#[derive(Debug, Clone)]
pub struct NumberPlan {
    region: country::Id,
    region_code: String,
}

/// A validated phone number, normalised to E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    international: String,
}

/// One side of a call as the PBX named it, plus what we recognised in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    /// Exactly what the PBX sent (trimmed).
    pub raw: String,
    /// Set when `raw` is a valid phone number.
    pub number: Option<PhoneNumber>,
    /// Set when `raw` is a short internal number (an operator's extension).
    pub extension: Option<Extension>,
    /// Caller name, if the PBX or a lookup gave one.
    pub name: Option<String>,
}

/// Internal numbers are at most this many digits; anything longer is read as a phone number.
const MAX_EXTENSION_DIGITS: usize = 5;

/// A party's raw text is cut to this many characters.
pub const MAX_RAW_CHARS: usize = 64;

impl NumberPlan {
    /// `region` is an ISO 3166 alpha-2 code, e.g. `RU`.
    pub fn new(region: &str) -> Result<Self, PhoneError> {
        let code = region.trim().to_ascii_uppercase();
        let id: country::Id = code
            .parse()
            .map_err(|_| PhoneError::UnknownRegion(region.to_owned()))?;
        Ok(Self {
            region: id,
            region_code: code,
        })
    }

    pub fn region(&self) -> &str {
        &self.region_code
    }

    /// Strictly parses a phone number (for numbers a person typed or clicked).
    pub fn parse(&self, raw: &str) -> Result<PhoneNumber, PhoneError> {
        let text = raw.trim();
        let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
        if text.is_empty() || !text.chars().all(allowed) || text.matches('+').count() > 1 {
            return Err(PhoneError::BadCharacters(raw.escape_debug().to_string()));
        }
        let invalid = || PhoneError::Invalid(raw.to_owned(), self.region_code.clone());
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        // A number with a '+' is parsed without a default region: phonenumber 0.3.10 with region
        // RU turns `+4989555666` into `+499555666` (it strips the RU trunk prefix 8 after the
        // country code). Numbers sent without the '+' but with a country code (`74951234567`)
        // are common in PBX caller ids: try the national reading first, then the international.
        let international = format!("+{digits}");
        let candidates: &[(Option<country::Id>, &str)] = if text.starts_with('+') {
            &[(None, &international)]
        } else {
            &[(Some(self.region), text), (None, &international)]
        };
        for &(region, candidate) in candidates {
            let Ok(number) = phonenumber::parse(region, candidate) else {
                continue;
            };
            if !phonenumber::is_valid(&number) {
                continue;
            }
            let e164 = number.format().mode(Mode::E164).to_string();
            // Belt and braces against parser bugs like the one above: an international
            // reading must keep every digit.
            if region.is_none() && e164[1..] != digits {
                continue;
            }
            return Ok(PhoneNumber {
                e164,
                international: number.format().mode(Mode::International).to_string(),
            });
        }
        Err(invalid())
    }

    /// The text as an internal number (an operator's extension): 1 to 5 digits. Cheap — no
    /// phone-number parsing — so trackers can call it on every event.
    pub fn extension(&self, raw: &str) -> Option<Extension> {
        let raw = raw.trim();
        let short = raw.len() <= MAX_EXTENSION_DIGITS && raw.chars().all(|c| c.is_ascii_digit());
        if short {
            Extension::new(raw).ok()
        } else {
            None
        }
    }

    /// Reads whatever the PBX sent; never fails. The raw text is kept as sent, except that
    /// control characters become spaces, it is trimmed and cut to [`MAX_RAW_CHARS`] characters
    /// (a far end can put anything in its caller id), and Asterisk's `<unknown>` placeholder
    /// reads as empty.
    pub fn party(&self, raw: &str) -> Party {
        let cleaned: String = raw
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_RAW_CHARS)
            .collect();
        let raw = match cleaned.trim() {
            "<unknown>" => "",
            text => text,
        };
        let extension = self.extension(raw);
        Party {
            raw: raw.to_owned(),
            number: match extension {
                Some(_) => None,
                None => self.parse(raw).ok(),
            },
            extension,
            name: None,
        }
    }
}

/// [`NumberPlan::party`] with a memory: parsing a phone number is costly (regular
/// expressions), and a tracker reads the same few numbers of a call on every event. Bounded:
/// past `capacity` texts the memory starts over.
#[derive(Debug, Clone)]
pub struct PartyMemo {
    plan: NumberPlan,
    memo: std::collections::HashMap<String, Party>,
    capacity: usize,
}

impl PartyMemo {
    pub fn new(plan: NumberPlan, capacity: usize) -> Self {
        Self {
            plan,
            memo: std::collections::HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn plan(&self) -> &NumberPlan {
        &self.plan
    }

    /// The same as `plan().party(raw)`.
    pub fn party(&mut self, raw: &str) -> Party {
        if let Some(party) = self.memo.get(raw) {
            return party.clone();
        }
        if self.memo.len() >= self.capacity {
            self.memo.clear();
        }
        let party = self.plan.party(raw);
        self.memo.insert(raw.to_owned(), party.clone());
        party
    }
}

impl PhoneNumber {
    /// `+74951234567`
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// Human form, `+7 495 123-45-67`.
    pub fn display(&self) -> String {
        self.international.clone()
    }
}

impl Party {
    /// What to show a person: the formatted number, else the raw text.
    pub fn display(&self) -> String {
        match &self.number {
            Some(n) => n.display(),
            None => self.raw.clone(),
        }
    }

    /// Sets the caller name. Control characters (a PBX may unescape `\n` or ESC into a
    /// caller id) become spaces; an empty name is no name.
    pub fn with_name(mut self, name: Option<String>) -> Self {
        self.name = name
            .map(|n| {
                n.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .filter(|n| !n.is_empty());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ru() -> NumberPlan {
        NumberPlan::new("ru").unwrap()
    }

    #[test]
    fn the_memo_answers_as_the_plan_does_and_stays_bounded() {
        let mut memo = PartyMemo::new(ru(), 2);
        for raw in [
            "84951234567",
            "101",
            "anonymous",
            "84951234567",
            " +7 916 555-01-02 ",
            "101",
        ] {
            assert_eq!(memo.party(raw), ru().party(raw), "{raw}");
            assert!(memo.memo.len() <= 2);
        }
        assert_eq!(memo.plan().region(), "RU");
    }

    #[test]
    fn normalises_russian_forms_to_e164() {
        let cases = [
            ("+74951234567", "+74951234567", "+7 495 123-45-67"),
            ("84951234567", "+74951234567", "+7 495 123-45-67"),
            ("74951234567", "+74951234567", "+7 495 123-45-67"),
            ("8 (495) 123-45-67", "+74951234567", "+7 495 123-45-67"),
            ("+7 916 555-01-02", "+79165550102", "+7 916 555-01-02"),
            ("+4930111222", "+4930111222", "+49 30 111222"),
            // Upstream phonenumber 0.3.10 dropped an 8 in these (see third_party/README.md).
            ("+4989555666", "+4989555666", "+49 89 555666"),
            ("+78123889002", "+78123889002", "+7 812 388-90-02"),
            ("88123889002", "+78123889002", "+7 812 388-90-02"),
            ("8 800 123-45-67", "+78001234567", "+7 800 123-45-67"),
            ("+7 (812) 315-98-83", "+78123159883", "+7 812 315-98-83"),
            ("+442071234567", "+442071234567", "+44 20 7123 4567"),
        ];
        for (raw, e164, display) in cases {
            let n = ru().parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((n.e164(), n.display().as_str()), (e164, display), "{raw}");
        }
    }

    #[test]
    fn rejects_junk_and_injection() {
        for raw in ["", "abc", "101\r\nAction: Hangup", "+7+495", "12"] {
            assert!(ru().parse(raw).is_err(), "{raw:?} must be rejected");
        }
        assert_eq!(
            NumberPlan::new("XX").unwrap_err(),
            PhoneError::UnknownRegion("XX".into())
        );
    }

    #[test]
    fn party_keeps_raw_and_recognises_extensions() {
        let p = ru().party("101");
        assert_eq!(p.extension.as_ref().map(|e| e.as_str()), Some("101"));
        assert_eq!(p.number, None);
        let p = ru().party("anonymous");
        assert_eq!(
            (p.display(), p.number, p.extension),
            ("anonymous".into(), None, None)
        );
        let p = ru().party("<unknown>");
        assert_eq!((p.raw.as_str(), p.number, p.extension), ("", None, None));
        let p = ru().party(&format!("12\r\n3{}", "x".repeat(200)));
        assert!(p.raw.starts_with("12  3x"));
        assert_eq!(p.raw.chars().count(), MAX_RAW_CHARS);
        let p = ru()
            .party("+74951234567")
            .with_name(Some("O\'Brien\n\u{1b}[31m".into()));
        assert_eq!(p.name.as_deref(), Some("O\'Brien  [31m"));
        assert_eq!(ru().party("1").with_name(Some(" \t ".into())).name, None);
        assert_eq!(ru().extension("123456"), None);
        let p = ru().party(" 84951234567 ");
        assert_eq!(p.display(), "+7 495 123-45-67");
        assert_eq!(p.raw, "84951234567");
    }
}
