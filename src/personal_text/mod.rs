//! Personal names and street addresses in text a policy keeps unchanged.
//!
//! The gate's other checks trust the policy's word about a column it `keep`s: such a
//! column is not compared with the input, and the uniqueness check only catches values
//! that are one per person. A first name or a street kept by mistake repeats (many
//! customers are called Anna, many live on a Main Street), so neither sees it. This
//! module gives the gate two more ways to see it, for kept text of record-level tables:
//!
//! - the column's name ([`name_says`]): `first_name`, `LastName`, `nachname`,
//!   `billing_address`, `street` (an IP, email or MAC address, or an address's country,
//!   city or postal code, is not a street address);
//! - what its rows look like ([`classify`]): one to four words of letters, one of them a
//!   common given name or surname (an embedded list of about 1,200 across the markets
//!   such a service sells in: `names.txt`), or a house number beside a street word
//!   (`221 Baker Street`, `Hauptstraße 12`, `ul. Długa 5`, `2-11-3 Shibuya`).
//!
//! Both are heuristics: a list of names misses rare ones and names in other scripts, and
//! a street needs a number. The gate therefore reports a column only when a good share of
//! its rows look personal ([`SHARE`] of at least [`MIN_ROWS`]), and a column the
//! operator knows holds no personal data can be vouched for (`[verify] not_personal`).

use std::collections::HashSet;
use std::sync::LazyLock;

/// What a kept value looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Name,
    Address,
}

impl Kind {
    /// What findings call it.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Name => "personal names",
            Kind::Address => "street addresses",
        }
    }

    /// What a value of it looks like, to [`classify`].
    pub fn looks(self) -> &'static str {
        match self {
            Kind::Name => "common given names or surnames",
            Kind::Address => "a house number beside a street",
        }
    }
}

/// A column is reported when at least this share of its non-null rows look personal...
pub const SHARE: f64 = 0.3;
/// ... and it has at least this many non-null rows (fewer are no evidence either way).
pub const MIN_ROWS: u64 = 50;

/// Words of `names.txt` that never count: everyday words, months, colours and name
/// particles, which a kept column of something else may well hold.
const STOP: &[&str] = &[
    "de", "van", "der", "den", "del", "da", "di", "la", "le", "el", "al", "do", "he", "das",
    "west", "park", "sun", "will", "may", "june", "april", "august", "mark", "bill", "rose",
    "grace", "hope", "joy", "dean", "chase", "hunter", "summer", "king", "young", "long", "little",
    "white", "black", "green", "brown", "gray", "grey", "price", "rich", "major", "golden", "ward",
    "bell", "wood", "woods", "rice", "burns", "hill", "hall", "ford", "jack", "frank", "angel",
    "cox", "reed", "cole", "costa", "bruno", "jesus",
];

/// Words that make a value a place, not a person, whatever name follows (`San José`,
/// `Santa Maria`, `St. Louis`, `Fort William`): cities a policy may well keep.
const PLACE_WORDS: &[&str] = &[
    "san", "santa", "santo", "são", "sao", "saint", "sainte", "st", "ste", "sankt", "fort", "port",
    "porto", "puerto", "new", "north", "south", "east", "west", "lake", "mount", "mont", "bad",
    "los", "las", "city", "county", "upon", "on", "sur", "am", "an", "im",
];

static NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("names.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter(|w| !STOP.contains(w))
        .collect()
});

/// Street words, whole (lower case, a trailing `.` removed).
const STREET_WORDS: &[&str] = &[
    // English
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "lane",
    "ln",
    "drive",
    "dr",
    "boulevard",
    "blvd",
    "way",
    "court",
    "ct",
    "terrace",
    "crescent",
    "square",
    "sq",
    "highway",
    "hwy",
    "parkway",
    "pkwy",
    "mews",
    "alley",
    // French
    "rue",
    "chemin",
    "allée",
    "allee",
    "impasse",
    "quai",
    "cours",
    "bd",
    // German, Dutch
    "straße",
    "strasse",
    "str",
    "gasse",
    "weg",
    "platz",
    "straat",
    "laan",
    "gracht",
    "plein",
    "kade",
    // Italian, Spanish, Portuguese
    "via",
    "viale",
    "piazza",
    "corso",
    "vicolo",
    "calle",
    "avenida",
    "avda",
    "av",
    "plaza",
    "paseo",
    "carrera",
    "camino",
    "vía",
    "rua",
    "travessa",
    "praça",
    "praca",
    "alameda",
    // Polish, Nordic
    "ulica",
    "ul",
    "aleja",
    "gatan",
    "gata",
    "vägen",
    "vagen",
    "vej",
    "gade",
    "veien",
];

/// Endings of compound street names (`Hauptstraße`, `Keizersgracht`, `Storgatan`).
const STREET_ENDINGS: &[&str] = &[
    "straße", "strasse", "straat", "gracht", "gasse", "allee", "platz", "plein", "gatan", "vägen",
    "vagen", "veien", "gade", "vej", "weg", "laan", "kade", "steeg", "singel",
];

/// What `v` looks like: a street address, a personal name, or neither.
pub fn classify(v: &str) -> Option<Kind> {
    let v = v.trim();
    if v.is_empty() || v.len() > 200 {
        return None;
    }
    if is_address(v) {
        Some(Kind::Address)
    } else if is_name(v) {
        Some(Kind::Name)
    } else {
        None
    }
}

fn words(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

/// One to four words of letters (and `'`, `’`, `-`, `.` inside them: O'Brien,
/// Jean-Pierre, J.), one of them, or a part of a hyphenated one, a common name, and
/// none a word that makes it a place ([`PLACE_WORDS`]).
fn is_name(v: &str) -> bool {
    let mut known = false;
    for (i, w) in words(v).enumerate() {
        if i == 4
            || !w.starts_with(char::is_alphabetic)
            || !w
                .chars()
                .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’' | '-' | '.'))
        {
            return false;
        }
        let lower = w.to_lowercase().replace('’', "'");
        let lower = lower.trim_end_matches('.');
        if PLACE_WORDS.contains(&lower) || lower.split('-').any(|p| PLACE_WORDS.contains(&p)) {
            return false;
        }
        known = known || NAMES.contains(lower) || lower.split('-').any(|p| NAMES.contains(p));
    }
    known
}

/// A house number (`12`, `12a`, `221B`, `12-14`, `3/5`) and a street word, or a
/// Japanese block address (`2-11-3 Shibuya`).
fn is_address(v: &str) -> bool {
    let lower = v.to_lowercase();
    let ws: Vec<&str> = words(&lower).collect();
    if ws.len() < 2 || ws.len() > 12 {
        return false;
    }
    let house_number = |w: &&str| {
        let w = w.trim_end_matches(['.', ';']);
        w.len() <= 8
            && w.starts_with(|c: char| c.is_ascii_digit())
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/'))
            && w.chars().filter(char::is_ascii_alphabetic).count() <= 2
    };
    let street = |w: &&str| {
        let w = w.trim_end_matches('.');
        STREET_WORDS.contains(&w)
            || STREET_ENDINGS
                .iter()
                .any(|e| w.len() > e.len() + 2 && w.ends_with(e))
    };
    let block = |w: &str| {
        let parts: Vec<&str> = w.split('-').collect();
        (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    (ws.iter().any(house_number) && ws.iter().any(street))
        || (block(ws[0]) && ws[1].chars().all(char::is_alphabetic))
}

/// The words of a column name: split at anything but letters and digits and where a
/// lower-case letter meets an upper-case one (`LastName`), lower-cased.
fn name_tokens(column: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in column.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a column's name says it holds, when it says personal names or street addresses.
pub fn name_says(column: &str) -> Option<Kind> {
    let tokens = name_tokens(column);
    let joined = tokens.concat();
    const NAME_PARTS: &[&str] = &[
        "firstname",
        "lastname",
        "surname",
        "fullname",
        "forename",
        "givenname",
        "familyname",
        "middlename",
        "maidenname",
        "customername",
        "contactname",
        "holdername",
        "billingname",
        "shippingname",
        "recipientname",
        "personname",
        "nickname",
    ];
    const NAME_WORDS: &[&str] = &[
        "vorname",
        "nachname",
        "prenom",
        "prénom",
        "nom",
        "apellido",
        "apellidos",
        "cognome",
        "sobrenome",
        "voornaam",
        "achternaam",
        "nazwisko",
        "imie",
        "imię",
        "efternamn",
        "fornamn",
        "förnamn",
    ];
    if NAME_PARTS.iter().any(|p| joined.contains(p))
        || tokens.iter().any(|t| NAME_WORDS.contains(&t.as_str()))
    {
        return Some(Kind::Name);
    }
    const ADDRESS_WORDS: &[&str] = &[
        "address",
        "addresses",
        "addr",
        "street",
        "streetname",
        "streetaddress",
        "adresse",
        "anschrift",
        "strasse",
        "straße",
        "direccion",
        "dirección",
        "indirizzo",
        "endereco",
        "endereço",
        "adres",
        "housenumber",
    ];
    // An address of another kind, or a coarse part of a postal one.
    const NOT_STREET: &[&str] = &[
        "ip", "ipv4", "ipv6", "email", "mail", "mac", "wallet", "web", "url", "server", "host",
        "remote", "client", "network", "country", "city", "town", "state", "region", "province",
        "county", "zip", "zipcode", "postal", "postcode", "plz", "code", "type", "verified",
        "valid", "id", "count", "hash", "token", "status",
    ];
    let street = tokens.iter().any(|t| ADDRESS_WORDS.contains(&t.as_str()))
        || joined.contains("street")
        || joined.contains("addressline");
    (street && !tokens.iter().any(|t| NOT_STREET.contains(&t.as_str()))).then_some(Kind::Address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_by_value() {
        for v in [
            "Anna",
            "  smith ",
            "O'Brien",
            "Jean-Pierre",
            "Müller",
            "José García",
            "Smith, John",
            "J. Nowak",
            "Yılmaz",
        ] {
            assert_eq!(classify(v), Some(Kind::Name), "{v}");
        }
        for v in [
            "221B Baker Street",
            "12 rue de Rivoli",
            "Hauptstraße 12",
            "Keizersgracht 123",
            "ul. Długa 5",
            "Rua Augusta, 1500",
            "Calle Mayor 5, 3º",
            "Drottninggatan 7",
            "2-11-3 Shibuya",
            "1600 Pennsylvania Ave. NW",
        ] {
            assert_eq!(classify(v), Some(Kind::Address), "{v}");
        }
        for v in [
            "US",
            "card",
            "paypal",
            "monthly",
            "May",
            "Premium 4K",
            "S123456789_DE",
            "subscription",
            "De",
            "Brown",
            "Anna Karenina Smith Jones Extra",
            "Anna2",
            "12",
            "",
            "Damrak",
            "2026-11-29",
            "San José",
            "Santa Maria",
            "St. Louis",
            "Saint-Louis",
            "Frankfurt am Main",
        ] {
            assert_eq!(classify(v), None, "{v}");
        }
    }

    #[test]
    fn names_and_addresses_by_column_name() {
        for c in [
            "first_name",
            "LastName",
            "surname",
            "customer_full_name",
            "Vorname",
            "nom",
            "cardholder_name",
        ] {
            assert_eq!(name_says(c), Some(Kind::Name), "{c}");
        }
        for c in [
            "address_line",
            "AddressLine1",
            "street",
            "billing_address",
            "StreetName",
            "adresse",
        ] {
            assert_eq!(name_says(c), Some(Kind::Address), "{c}");
        }
        for c in [
            "ip_address",
            "email_address",
            "EmailAddress",
            "e_mail_address",
            "address_country",
            "billing_address_postal_code",
            "offer_name",
            "company_name",
            "display_name",
            "classname",
            "country",
            "city",
            "nominal",
        ] {
            assert_eq!(name_says(c), None, "{c}");
        }
    }

    #[test]
    fn the_list_has_no_stop_word_and_reads_as_words() {
        assert!(NAMES.len() > 1000, "{}", NAMES.len());
        for w in STOP {
            assert!(!NAMES.contains(w), "{w}");
        }
        assert!(NAMES.iter().all(|w| w.chars().all(|c| !c.is_uppercase())));
    }
}
