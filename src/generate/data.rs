//! Static reference tables for the synthetic export: countries with their
//! currencies, phone and postal formats, streets and cities, names across
//! nationalities, e-mail domains, company names and free-text templates.
//!
//! Everything here is plain `'static` data so that generation never allocates
//! for lookups and the catalogue is identical on every run.

/// How a street address is laid out in a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddressStyle {
    /// "221 Baker Street", "12 rue de Rivoli".
    NumberFirst,
    /// "Hauptstraße 12", "Via Roma 21".
    NumberLast,
    /// "Rua Augusta, 1500".
    NumberLastComma,
    /// "2-11-3 Shibuya".
    Japanese,
}

/// One country the platform sells in.
pub(super) struct Country {
    /// ISO 3166-1 alpha-2.
    pub code: &'static str,
    /// Relative share of customers.
    pub weight: u32,
    /// ISO 4217 currency of the local catalogue.
    pub currency: &'static str,
    /// Local currency units per US dollar (rough, for price points).
    pub fx: f64,
    /// Prices are whole units (JPY).
    pub whole_units: bool,
    /// Multiplier on the per-offer monthly churn.
    pub churn_factor: f64,
    /// Locales; the first one is the usual one.
    pub locales: &'static [&'static str],
    /// Index into [`NAME_GROUPS`] for the usual names of the country.
    pub names: usize,
    /// (city, postal code template). Template: `#` digit, `N` digit 1-9, `@` letter A-Z.
    pub cities: &'static [(&'static str, &'static str)],
    pub streets: &'static [&'static str],
    pub address: AddressStyle,
    /// Phone templates. `#` digit, `N` digit 2-9.
    pub phones: &'static [&'static str],
    /// Local e-mail providers.
    pub domains: &'static [&'static str],
    /// Legal-form suffixes for company names.
    pub company_suffixes: &'static [&'static str],
}

pub(super) const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        weight: 300,
        currency: "USD",
        fx: 1.0,
        whole_units: false,
        churn_factor: 1.0,
        locales: &["en_US", "es_US"],
        names: 0,
        cities: &[
            ("New York", "100##"),
            ("San Francisco", "941##"),
            ("Chicago", "606##"),
            ("Austin", "787##"),
            ("Seattle", "981##"),
            ("Miami", "331##"),
            ("Boston", "021##"),
            ("Denver", "802##"),
        ],
        streets: &[
            "Main Street",
            "Oak Avenue",
            "Maple Drive",
            "Sunset Boulevard",
            "Elm Street",
            "Park Avenue",
            "Washington Street",
            "Lake Shore Drive",
        ],
        address: AddressStyle::NumberFirst,
        phones: &[
            "+1 (N##) 555-01##",
            "N##.555.01##",
            "(N##) N##-####",
            "+1 N##-N##-####",
        ],
        domains: &["aol.com", "comcast.net", "verizon.net"],
        company_suffixes: &["Inc.", "LLC", "Corp."],
    },
    Country {
        code: "GB",
        weight: 100,
        currency: "GBP",
        fx: 0.79,
        whole_units: false,
        churn_factor: 0.9,
        locales: &["en_GB", "cy_GB"],
        names: 0,
        cities: &[
            ("London", "SW1A #@@"),
            ("London", "E1 #@@"),
            ("Manchester", "M1 #@@"),
            ("Birmingham", "B1 #@@"),
            ("Edinburgh", "EH1 #@@"),
            ("Bristol", "BS1 #@@"),
            ("Leeds", "LS1 #@@"),
        ],
        streets: &[
            "Baker Street",
            "High Street",
            "Church Lane",
            "Victoria Road",
            "Station Road",
            "Kings Road",
            "Queen's Walk",
        ],
        address: AddressStyle::NumberFirst,
        phones: &[
            "+44 20 7946 0###",
            "(020) 7946 0###",
            "+44 7### ######",
            "07### ######",
        ],
        domains: &["btinternet.com", "sky.com", "yahoo.co.uk"],
        company_suffixes: &["Ltd", "PLC", "LLP"],
    },
    Country {
        code: "DE",
        weight: 100,
        currency: "EUR",
        fx: 0.92,
        whole_units: false,
        churn_factor: 0.8,
        locales: &["de_DE", "en_US"],
        names: 1,
        cities: &[
            ("Berlin", "10###"),
            ("Hamburg", "20###"),
            ("München", "80###"),
            ("Köln", "50###"),
            ("Frankfurt am Main", "60###"),
            ("Stuttgart", "70###"),
        ],
        streets: &[
            "Hauptstraße",
            "Bahnhofstraße",
            "Schillerstraße",
            "Gartenweg",
            "Lindenallee",
            "Goethestraße",
            "Kastanienallee",
        ],
        address: AddressStyle::NumberLast,
        phones: &[
            "0049 30 ########",
            "+49 151 ########",
            "030 ########",
            "+49 (0)89 #######",
        ],
        domains: &["gmx.de", "web.de", "t-online.de"],
        company_suffixes: &["GmbH", "AG", "UG"],
    },
    Country {
        code: "FR",
        weight: 80,
        currency: "EUR",
        fx: 0.92,
        whole_units: false,
        churn_factor: 1.0,
        locales: &["fr_FR", "en_US"],
        names: 2,
        cities: &[
            ("Paris", "750##"),
            ("Lyon", "6900#"),
            ("Marseille", "130##"),
            ("Toulouse", "310##"),
            ("Bordeaux", "330##"),
            ("Lille", "590##"),
        ],
        streets: &[
            "rue de Rivoli",
            "avenue des Champs-Élysées",
            "boulevard Saint-Germain",
            "rue de la Paix",
            "rue Victor Hugo",
            "place Bellecour",
        ],
        address: AddressStyle::NumberFirst,
        phones: &["+33 6 ## ## ## ##", "06 ## ## ## ##", "+33 1 ## ## ## ##"],
        domains: &["orange.fr", "free.fr", "laposte.net"],
        company_suffixes: &["SARL", "SAS", "SA"],
    },
    Country {
        code: "NL",
        weight: 50,
        currency: "EUR",
        fx: 0.92,
        whole_units: false,
        churn_factor: 0.85,
        locales: &["nl_NL", "en_GB"],
        names: 3,
        cities: &[
            ("Amsterdam", "10## @@"),
            ("Rotterdam", "30## @@"),
            ("Utrecht", "35## @@"),
            ("Den Haag", "25## @@"),
            ("Eindhoven", "56## @@"),
        ],
        streets: &[
            "Keizersgracht",
            "Prinsengracht",
            "Damrak",
            "Kalverstraat",
            "Stationsweg",
            "Dorpsstraat",
        ],
        address: AddressStyle::NumberLast,
        phones: &["+31 6 ########", "06-########", "020 ### ####"],
        domains: &["ziggo.nl", "kpnmail.nl", "hetnet.nl"],
        company_suffixes: &["B.V.", "N.V."],
    },
    Country {
        code: "PL",
        weight: 50,
        currency: "PLN",
        fx: 4.0,
        whole_units: false,
        churn_factor: 1.2,
        locales: &["pl_PL", "en_US"],
        names: 4,
        cities: &[
            ("Warszawa", "0#-###"),
            ("Kraków", "3#-###"),
            ("Gdańsk", "80-###"),
            ("Wrocław", "5#-###"),
            ("Poznań", "6#-###"),
        ],
        streets: &[
            "ul. Marszałkowska",
            "ul. Floriańska",
            "ul. Długa",
            "ul. Piotrkowska",
            "al. Jerozolimskie",
            "ul. Świętojańska",
        ],
        address: AddressStyle::NumberLast,
        phones: &["+48 N## ### ###", "N## ### ###", "+48 22 ### ## ##"],
        domains: &["wp.pl", "onet.pl", "interia.pl"],
        company_suffixes: &["Sp. z o.o.", "S.A."],
    },
    Country {
        code: "ES",
        weight: 60,
        currency: "EUR",
        fx: 0.92,
        whole_units: false,
        churn_factor: 1.1,
        locales: &["es_ES", "ca_ES"],
        names: 5,
        cities: &[
            ("Madrid", "280##"),
            ("Barcelona", "080##"),
            ("Valencia", "460##"),
            ("Sevilla", "410##"),
            ("Bilbao", "480##"),
        ],
        streets: &[
            "Calle Mayor",
            "Gran Vía",
            "Calle de Alcalá",
            "Avenida Diagonal",
            "Calle Serrano",
            "Paseo de Gracia",
        ],
        address: AddressStyle::NumberLast,
        phones: &["+34 6## ## ## ##", "6## ### ###", "+34 91 ### ## ##"],
        domains: &["telefonica.net", "yahoo.es"],
        company_suffixes: &["S.L.", "S.A."],
    },
    Country {
        code: "IT",
        weight: 60,
        currency: "EUR",
        fx: 0.92,
        whole_units: false,
        churn_factor: 1.1,
        locales: &["it_IT", "en_US"],
        names: 6,
        cities: &[
            ("Roma", "001##"),
            ("Milano", "201##"),
            ("Napoli", "801##"),
            ("Torino", "101##"),
            ("Firenze", "501##"),
        ],
        streets: &[
            "Via Roma",
            "Via Garibaldi",
            "Corso Vittorio Emanuele",
            "Via Dante",
            "Via Manzoni",
            "Piazza Navona",
        ],
        address: AddressStyle::NumberLast,
        phones: &["+39 3## ### ####", "3## #######", "+39 06 #### ####"],
        domains: &["libero.it", "virgilio.it", "tiscali.it"],
        company_suffixes: &["S.r.l.", "S.p.A."],
    },
    Country {
        code: "SE",
        weight: 30,
        currency: "SEK",
        fx: 10.5,
        whole_units: false,
        churn_factor: 0.8,
        locales: &["sv_SE", "en_GB"],
        names: 7,
        cities: &[
            ("Stockholm", "1## ##"),
            ("Göteborg", "4## ##"),
            ("Malmö", "2## ##"),
            ("Uppsala", "75# ##"),
        ],
        streets: &[
            "Drottninggatan",
            "Storgatan",
            "Kungsgatan",
            "Sveavägen",
            "Götgatan",
            "Linnégatan",
        ],
        address: AddressStyle::NumberLast,
        phones: &["+46 70 ### ## ##", "070-### ## ##", "08-### ### ##"],
        domains: &["telia.com", "bredband.net"],
        company_suffixes: &["AB"],
    },
    Country {
        code: "BR",
        weight: 60,
        currency: "BRL",
        fx: 5.0,
        whole_units: false,
        churn_factor: 1.25,
        locales: &["pt_BR", "es_AR"],
        names: 8,
        cities: &[
            ("São Paulo", "0####-###"),
            ("Rio de Janeiro", "2####-###"),
            ("Belo Horizonte", "3####-###"),
            ("Curitiba", "8####-###"),
        ],
        streets: &[
            "Rua Augusta",
            "Avenida Paulista",
            "Rua Oscar Freire",
            "Avenida Atlântica",
            "Rua das Flores",
            "Rua XV de Novembro",
        ],
        address: AddressStyle::NumberLastComma,
        phones: &["+55 11 9####-####", "(11) 9####-####", "+55 21 9#### ####"],
        domains: &["uol.com.br", "bol.com.br", "terra.com.br"],
        company_suffixes: &["Ltda.", "S.A."],
    },
    Country {
        code: "CA",
        weight: 50,
        currency: "CAD",
        fx: 1.35,
        whole_units: false,
        churn_factor: 0.95,
        locales: &["en_CA", "fr_CA"],
        names: 0,
        cities: &[
            ("Toronto", "M#@ #@#"),
            ("Montréal", "H#@ #@#"),
            ("Vancouver", "V#@ #@#"),
            ("Calgary", "T#@ #@#"),
            ("Ottawa", "K#@ #@#"),
        ],
        streets: &[
            "Yonge Street",
            "Queen Street West",
            "Rue Sainte-Catherine",
            "Robson Street",
            "Bank Street",
            "Jasper Avenue",
        ],
        address: AddressStyle::NumberFirst,
        phones: &["+1 (N##) N##-####", "N##-N##-####", "+1 N##.N##.####"],
        domains: &["shaw.ca", "rogers.com", "videotron.ca"],
        company_suffixes: &["Inc.", "Ltd."],
    },
    Country {
        code: "AU",
        weight: 40,
        currency: "AUD",
        fx: 1.5,
        whole_units: false,
        churn_factor: 0.95,
        locales: &["en_AU", "en_GB"],
        names: 0,
        cities: &[
            ("Sydney", "2###"),
            ("Melbourne", "3###"),
            ("Brisbane", "4###"),
            ("Perth", "6###"),
            ("Adelaide", "5###"),
        ],
        streets: &[
            "George Street",
            "Collins Street",
            "Queen Street",
            "Hay Street",
            "King William Street",
            "Chapel Street",
        ],
        address: AddressStyle::NumberFirst,
        phones: &["+61 4## ### ###", "04## ### ###", "(02) #### ####"],
        domains: &["bigpond.com", "optusnet.com.au"],
        company_suffixes: &["Pty Ltd"],
    },
    Country {
        code: "JP",
        weight: 20,
        currency: "JPY",
        fx: 150.0,
        whole_units: true,
        churn_factor: 0.85,
        locales: &["ja_JP", "en_US"],
        names: 9,
        cities: &[
            ("Tokyo", "1##-####"),
            ("Osaka", "5##-####"),
            ("Yokohama", "2##-####"),
            ("Kyoto", "6##-####"),
            ("Sapporo", "06#-####"),
        ],
        streets: &[
            "Shibuya", "Shinjuku", "Minato", "Chuo", "Meguro", "Setagaya",
        ],
        address: AddressStyle::Japanese,
        phones: &["+81 90-####-####", "090-####-####", "03-####-####"],
        domains: &["yahoo.co.jp", "docomo.ne.jp", "ezweb.ne.jp"],
        company_suffixes: &["K.K.", "G.K."],
    },
];

/// First and last names of one naming tradition.
pub(super) struct NameGroup {
    pub first: &'static [&'static str],
    pub last: &'static [&'static str],
}

pub(super) const NAME_GROUPS: &[NameGroup] = &[
    NameGroup {
        first: &[
            "James", "Olivia", "Liam", "Emma", "Noah", "Ava", "William", "Sophia", "Michael",
            "Emily", "John", "Jessica",
        ],
        last: &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
            "Taylor", "O'Brien", "Clarke", "Walker",
        ],
    },
    NameGroup {
        first: &[
            "Lukas",
            "Anna",
            "Jürgen",
            "Lena",
            "Maximilian",
            "Sophie",
            "Felix",
            "Marie",
        ],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Becker",
            "Schäfer",
        ],
    },
    NameGroup {
        first: &[
            "Louis", "Chloé", "Hugo", "Léa", "Gabriel", "Manon", "Élodie",
        ],
        last: &[
            "Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent",
        ],
    },
    NameGroup {
        first: &["Daan", "Sanne", "Sem", "Fleur", "Bram", "Lotte"],
        last: &[
            "De Vries",
            "Jansen",
            "Bakker",
            "Visser",
            "Van den Berg",
            "Smit",
        ],
    },
    NameGroup {
        first: &[
            "Jakub",
            "Zofia",
            "Łukasz",
            "Małgorzata",
            "Piotr",
            "Katarzyna",
        ],
        last: &[
            "Nowak",
            "Kowalski",
            "Wiśniewski",
            "Wójcik",
            "Kamińska",
            "Lewandowski",
        ],
    },
    NameGroup {
        first: &["Alejandro", "Lucía", "Javier", "Sofía", "Pablo", "Carmen"],
        last: &[
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
        ],
    },
    NameGroup {
        first: &[
            "Giuseppe",
            "Giulia",
            "Francesco",
            "Chiara",
            "Alessandro",
            "Martina",
        ],
        last: &["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano"],
    },
    NameGroup {
        first: &["Erik", "Astrid", "Lars", "Elsa", "Oskar", "Maja"],
        last: &[
            "Andersson",
            "Johansson",
            "Karlsson",
            "Nilsson",
            "Eriksson",
            "Lindström",
        ],
    },
    NameGroup {
        first: &["João", "Ana", "Pedro", "Mariana", "Rafael", "Camila"],
        last: &["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa"],
    },
    NameGroup {
        first: &["Haruto", "Yui", "Sota", "Hina", "Ren", "Sakura"],
        last: &["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito"],
    },
];

/// Big international providers (most customers use one of these).
pub(super) const GLOBAL_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
];

/// Plus-addressing tags ("john.smith+promo@gmail.com").
pub(super) const PLUS_TAGS: &[&str] = &[
    "promo",
    "tv",
    "streaming",
    "video",
    "news",
    "shopping",
    "subs",
    "cleeng",
];

pub(super) const COMPANY_WORDS: &[&str] = &[
    "Northwind",
    "Blue Harbor",
    "Summit",
    "Brightline",
    "Silverleaf",
    "Redwood",
    "Lumen",
    "Atlas",
    "Polaris",
    "Kestrel",
    "Meridian",
    "Oakridge",
    "Nordlicht",
    "Vantage",
    "Cobalt",
    "Evergreen",
];

pub(super) const COMPANY_TRADES: &[&str] = &[
    "Media",
    "Consulting",
    "Solutions",
    "Studios",
    "Logistics",
    "Labs",
    "Partners",
    "Digital",
    "Productions",
    "Analytics",
];

/// Answers that carry no direct identifier (some mention the city, `{city}`).
pub(super) const PLAIN_ANSWERS: &[&str] = &[
    "How did you hear about us? Instagram",
    "How did you hear about us? A friend told me",
    "Google search",
    "Podcast ad (The Daily Stream)",
    "Saw a billboard in {city}",
    "I mostly watch football",
    "TV commercial during the match",
    "Favourite genre: documentaries; Device: Roku",
    "Recommended by my brother",
    "Moved here from abroad and want to watch home games",
    "YouTube review",
    "Newsletter",
    "Facebook group for {city} expats",
    "Favourite sport: tennis",
];

/// Answers that embed the customer's own name (`{first}`, `{last}`), as sign-offs and
/// introductions do: what `scrub` with `names` removes.
pub(super) const NAME_ANSWERS: &[&str] = &[
    "Hi, this is {first} {last}. Please add the sports package",
    "Cancel at the end of the month please. Thanks, {first}",
    "Account is shared with my partner; invoices to {last} family",
    "{first} here: the app logs me out on my TV",
    "Best regards, {first} {last}",
];

/// Answers that embed the customer's e-mail address (`{email}`).
pub(super) const EMAIL_ANSWERS: &[&str] = &[
    "Referred by a friend, you can reach me at {email}",
    "Please send the invoices to {email} instead",
    "How did you hear about us? Newsletter (signed up as {email})",
    "Contact me on {email} if the stream breaks",
];

/// Answers that embed a phone number (`{phone}`).
pub(super) const PHONE_ANSWERS: &[&str] = &[
    "Please call me on {phone} about the family plan",
    "Found you via a TV ad. Mobile: {phone}",
    "WhatsApp {phone} if there are problems with my account",
    "Call me at {phone} after 6pm",
];

/// Folds a name fragment to lowercase ASCII for e-mail local parts
/// ("Müller" -> "mueller", "Łukasz" -> "lukasz", "O'Brien" -> "obrien").
pub(super) fn fold_ascii_lower(s: &str, out: &mut String) {
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let rep = match c {
            'ä' | 'Ä' => "ae",
            'ö' | 'Ö' => "oe",
            'ü' | 'Ü' => "ue",
            'ß' => "ss",
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'ę' => "e",
            'á' | 'à' | 'â' | 'ã' | 'ą' | 'å' | 'Å' => "a",
            'í' | 'ì' | 'î' => "i",
            'ó' | 'ò' | 'ô' | 'õ' | 'ø' => "o",
            'ú' | 'ù' | 'û' => "u",
            'ç' | 'ć' => "c",
            'ł' | 'Ł' => "l",
            'ś' | 'Ś' => "s",
            'ń' | 'ñ' => "n",
            'ż' | 'ź' | 'Ż' => "z",
            _ => "",
        };
        out.push_str(rep);
    }
}
