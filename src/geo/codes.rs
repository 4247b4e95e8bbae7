//! The codes sites are matched by: ISO 3166-1 alpha-2 countries (and XK, Kosovo, which the
//! GeoIP databases use), the seven continent codes of GeoIP2, and ISO 3166-2 subdivisions
//! (`US-CA`: a country and up to three letters or digits).

/// A two-letter code (country or continent), uppercase ASCII.
pub type Code = [u8; 2];

/// ISO 3166-1 alpha-2, every assigned code, and XK.
const COUNTRIES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// GeoIP2's continent codes.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// A code as stored: two ASCII letters, uppercased; `None` for anything else.
pub fn code(s: &str) -> Option<Code> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// `s` as a country code, if it is one (any case).
pub fn country(s: &str) -> Option<Code> {
    let c = code(s)?;
    COUNTRIES.split(' ').any(|k| k.as_bytes() == c).then_some(c)
}

/// `s` as a continent code, if it is one (any case).
pub fn continent(s: &str) -> Option<Code> {
    let c = code(s)?;
    CONTINENTS.iter().any(|k| k.as_bytes() == c).then_some(c)
}

/// A subdivision as stored: its country and its own code (1–3 letters or digits, uppercase,
/// zero-padded).
pub type Subdivision = (Code, [u8; 3]);

/// The part of a subdivision after the country (`CA` of `US-CA`), as stored.
pub fn subdivision_part(s: &str) -> Option<[u8; 3]> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 3 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = [0u8; 3];
    for (o, c) in out.iter_mut().zip(b) {
        *o = c.to_ascii_uppercase();
    }
    Some(out)
}

/// `US-CA` → (US, CA), if the country is one and the rest could be a subdivision.
pub fn subdivision(s: &str) -> Option<Subdivision> {
    let (c, sub) = s.split_once('-')?;
    Some((country(c)?, subdivision_part(sub)?))
}

/// A code as text.
pub fn text(c: &[u8]) -> &str {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    std::str::from_utf8(&c[..end]).unwrap_or("??")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assigned_country_and_only_those() {
        assert_eq!(COUNTRIES.split(' ').count(), 250, "249 ISO codes and XK");
        let mut all: Vec<&str> = COUNTRIES.split(' ').collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 250, "no code twice");
        assert!(all.iter().all(|c| c.len() == 2));
        assert_eq!(country("de"), Some(*b"DE"));
        assert_eq!(country("XK"), Some(*b"XK"));
        for bad in ["UK", "EU", "D", "DEU", "", "1A"] {
            assert_eq!(country(bad), None, "{bad}");
        }
    }

    #[test]
    fn continents_and_subdivisions() {
        assert_eq!(continent("eu"), Some(*b"EU"));
        assert_eq!(continent("AM"), None);
        assert_eq!(subdivision("US-CA"), Some((*b"US", *b"CA\0")));
        assert_eq!(subdivision("de-by"), Some((*b"DE", *b"BY\0")));
        assert_eq!(subdivision("GB-ENG"), Some((*b"GB", *b"ENG")));
        for bad in ["US", "US-", "US-ABCD", "XX-CA", "US-C A"] {
            assert_eq!(subdivision(bad), None, "{bad}");
        }
        assert_eq!(text(b"CA\0"), "CA");
    }
}
