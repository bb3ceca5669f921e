//! The fixed universe the simulator draws from: instruments, companies, people, places, sources.
//!
//! Everything here is plain static data so that a run is reproducible from its seed alone. Names are
//! real-world flavoured but the records built from them are synthetic.

/// A listed equity and what news and filings say about its company.
pub struct Equity {
    pub symbol: &'static str,
    pub exchange: &'static str,
    pub currency: &'static str,
    /// Starting price of the random walk, in `currency`.
    pub price: f64,
    pub company: &'static str,
    /// The name news headlines use.
    pub short: &'static str,
    /// SEC EDGAR CIK (foreign issuers without SEC filings have none).
    pub cik: Option<u32>,
    pub ceo: &'static str,
    pub hq: &'static str,
    pub product: &'static str,
}

macro_rules! eq {
    ($sym:literal, $ex:literal, $cur:literal, $px:literal, $co:literal, $short:literal, $cik:expr,
     $ceo:literal, $hq:literal, $prod:literal) => {
        Equity {
            symbol: $sym,
            exchange: $ex,
            currency: $cur,
            price: $px,
            company: $co,
            short: $short,
            cik: $cik,
            ceo: $ceo,
            hq: $hq,
            product: $prod,
        }
    };
}

pub static EQUITIES: &[Equity] = &[
    eq!(
        "AAPL",
        "NASDAQ",
        "USD",
        189.5,
        "Apple Inc.",
        "Apple",
        Some(320193),
        "Tim Cook",
        "Cupertino",
        "iPhone"
    ),
    eq!(
        "MSFT",
        "NASDAQ",
        "USD",
        415.2,
        "Microsoft Corporation",
        "Microsoft",
        Some(789019),
        "Satya Nadella",
        "Redmond",
        "Azure"
    ),
    eq!(
        "AMZN",
        "NASDAQ",
        "USD",
        181.3,
        "Amazon.com, Inc.",
        "Amazon",
        Some(1018724),
        "Andy Jassy",
        "Seattle",
        "AWS"
    ),
    eq!(
        "GOOGL",
        "NASDAQ",
        "USD",
        171.9,
        "Alphabet Inc.",
        "Alphabet",
        Some(1652044),
        "Sundar Pichai",
        "Mountain View",
        "Gemini"
    ),
    eq!(
        "META",
        "NASDAQ",
        "USD",
        478.1,
        "Meta Platforms, Inc.",
        "Meta",
        Some(1326801),
        "Mark Zuckerberg",
        "Menlo Park",
        "Instagram"
    ),
    eq!(
        "NVDA",
        "NASDAQ",
        "USD",
        121.4,
        "NVIDIA Corporation",
        "Nvidia",
        Some(1045810),
        "Jensen Huang",
        "Santa Clara",
        "H100"
    ),
    eq!(
        "TSLA",
        "NASDAQ",
        "USD",
        248.7,
        "Tesla, Inc.",
        "Tesla",
        Some(1318605),
        "Elon Musk",
        "Austin",
        "Model Y"
    ),
    eq!(
        "JPM",
        "NYSE",
        "USD",
        201.6,
        "JPMorgan Chase & Co.",
        "JPMorgan",
        Some(19617),
        "Jamie Dimon",
        "New York",
        "Chase Sapphire"
    ),
    eq!(
        "V",
        "NYSE",
        "USD",
        274.8,
        "Visa Inc.",
        "Visa",
        Some(1403161),
        "Ryan McInerney",
        "San Francisco",
        "Visa Direct"
    ),
    eq!(
        "XOM",
        "NYSE",
        "USD",
        114.9,
        "Exxon Mobil Corporation",
        "Exxon",
        Some(34088),
        "Darren Woods",
        "Spring",
        "Mobil 1"
    ),
    eq!(
        "JNJ",
        "NYSE",
        "USD",
        154.3,
        "Johnson & Johnson",
        "J&J",
        Some(200406),
        "Joaquin Duato",
        "New Brunswick",
        "Tylenol"
    ),
    eq!(
        "WMT",
        "NYSE",
        "USD",
        68.2,
        "Walmart Inc.",
        "Walmart",
        Some(104169),
        "Doug McMillon",
        "Bentonville",
        "Walmart+"
    ),
    eq!(
        "KO",
        "NYSE",
        "USD",
        62.4,
        "The Coca-Cola Company",
        "Coca-Cola",
        Some(21344),
        "James Quincey",
        "Atlanta",
        "Coke Zero"
    ),
    eq!(
        "BRK.B",
        "NYSE",
        "USD",
        409.7,
        "Berkshire Hathaway Inc.",
        "Berkshire",
        Some(1067983),
        "Warren Buffett",
        "Omaha",
        "GEICO"
    ),
    eq!(
        "SAP",
        "XETRA",
        "EUR",
        174.6,
        "SAP SE",
        "SAP",
        Some(1000184),
        "Christian Klein",
        "Walldorf",
        "S/4HANA"
    ),
    eq!(
        "SIE",
        "XETRA",
        "EUR",
        171.2,
        "Siemens AG",
        "Siemens",
        None,
        "Roland Busch",
        "Munich",
        "Xcelerator"
    ),
    eq!(
        "ASML",
        "EURONEXT",
        "EUR",
        901.5,
        "ASML Holding N.V.",
        "ASML",
        Some(937966),
        "Christophe Fouquet",
        "Veldhoven",
        "EUV scanner"
    ),
    eq!(
        "MC",
        "EURONEXT",
        "EUR",
        748.9,
        "LVMH Moët Hennessy Louis Vuitton SE",
        "LVMH",
        None,
        "Bernard Arnault",
        "Paris",
        "Louis Vuitton"
    ),
    eq!(
        "HSBA",
        "LSE",
        "GBP",
        6.52,
        "HSBC Holdings plc",
        "HSBC",
        Some(1089113),
        "Georges Elhedery",
        "London",
        "HSBC Premier"
    ),
    eq!(
        "SHEL",
        "LSE",
        "GBP",
        27.3,
        "Shell plc",
        "Shell",
        Some(1306965),
        "Wael Sawan",
        "London",
        "Shell Recharge"
    ),
    eq!(
        "7203.T",
        "TSE",
        "JPY",
        3310.0,
        "Toyota Motor Corporation",
        "Toyota",
        Some(1094517),
        "Koji Sato",
        "Toyota City",
        "Prius"
    ),
    eq!(
        "6758.T",
        "TSE",
        "JPY",
        13080.0,
        "Sony Group Corporation",
        "Sony",
        Some(313838),
        "Kenichiro Yoshida",
        "Tokyo",
        "PlayStation 5"
    ),
    eq!(
        "0700.HK",
        "HKEX",
        "HKD",
        381.4,
        "Tencent Holdings Limited",
        "Tencent",
        None,
        "Ma Huateng",
        "Shenzhen",
        "WeChat"
    ),
];

/// Alternative venues a US listing also trades on.
pub static US_VENUES: &[&str] = &["BATS", "ARCA", "IEX", "EDGX"];

/// A crypto pair: `BASE-QUOTE`, the starting price in the quote asset and the circulating supply.
pub struct Pair {
    pub symbol: &'static str,
    pub quote: &'static str,
    pub price: f64,
    pub supply: f64,
}

pub static PAIRS: &[Pair] = &[
    Pair {
        symbol: "BTC-USD",
        quote: "USD",
        price: 64_250.0,
        supply: 19.7e6,
    },
    Pair {
        symbol: "ETH-USD",
        quote: "USD",
        price: 3_390.0,
        supply: 120.1e6,
    },
    Pair {
        symbol: "SOL-USD",
        quote: "USD",
        price: 148.2,
        supply: 462.0e6,
    },
    Pair {
        symbol: "XRP-USD",
        quote: "USD",
        price: 0.552,
        supply: 55.6e9,
    },
    Pair {
        symbol: "ADA-USD",
        quote: "USD",
        price: 0.451,
        supply: 35.7e9,
    },
    Pair {
        symbol: "DOGE-USD",
        quote: "USD",
        price: 0.1493,
        supply: 145.0e9,
    },
    Pair {
        symbol: "BTC-USDT",
        quote: "USDT",
        price: 64_270.0,
        supply: 19.7e6,
    },
    Pair {
        symbol: "ETH-USDT",
        quote: "USDT",
        price: 3_392.0,
        supply: 120.1e6,
    },
    Pair {
        symbol: "BNB-USDT",
        quote: "USDT",
        price: 581.0,
        supply: 146.0e6,
    },
    Pair {
        symbol: "AVAX-USD",
        quote: "USD",
        price: 34.8,
        supply: 394.0e6,
    },
    Pair {
        symbol: "LINK-EUR",
        quote: "EUR",
        price: 13.9,
        supply: 587.0e6,
    },
    Pair {
        symbol: "ETH-BTC",
        quote: "BTC",
        price: 0.05276,
        supply: 120.1e6,
    },
];

pub static CRYPTO_EXCHANGES: &[&str] = &["COINBASE", "BINANCE", "KRAKEN", "BITSTAMP", "OKX"];

pub static PEOPLE: &[&str] = &[
    "Jerome Powell",
    "Christine Lagarde",
    "Janet Yellen",
    "Kazuo Ueda",
    "Andrew Bailey",
    "Pan Gongsheng",
    "Cathie Wood",
    "Larry Fink",
    "Ken Griffin",
    "Mohamed El-Erian",
    "Kristalina Georgieva",
    "Joachim Nagel",
    "François Villeroy de Galhau",
];

pub static PLACES: &[&str] = &[
    "Washington",
    "Frankfurt",
    "London",
    "Tokyo",
    "Beijing",
    "Brussels",
    "New York",
    "Shanghai",
    "Rotterdam",
    "Singapore",
    "Zürich",
    "São Paulo",
    "Taiwan",
    "Strait of Hormuz",
];

pub static EVENTS: &[&str] = &[
    "FOMC meeting",
    "ECB rate decision",
    "Jackson Hole symposium",
    "World Economic Forum",
    "OPEC+ meeting",
    "G20 summit",
    "earnings season",
    "US jobs report",
];

pub static OTHER: &[&str] = &[
    "inflation",
    "interest rates",
    "supply chains",
    "artificial intelligence",
    "tariffs",
    "bond yields",
];

/// A news publisher: display name, host, language.
pub static NEWS_SOURCES: &[(&str, &str, &str)] = &[
    ("Reuters", "www.reuters.com", "en"),
    ("Bloomberg", "www.bloomberg.com", "en"),
    ("Financial Times", "www.ft.com", "en"),
    ("The Wall Street Journal", "www.wsj.com", "en"),
    ("CNBC", "www.cnbc.com", "en"),
    ("MarketWatch", "www.marketwatch.com", "en"),
    ("Yahoo Finance", "finance.yahoo.com", "en"),
    ("Nikkei Asia", "asia.nikkei.com", "en"),
    ("Handelsblatt", "www.handelsblatt.com", "de"),
    ("Les Echos", "www.lesechos.fr", "fr"),
    ("El País", "elpais.com", "es"),
    ("Il Sole 24 Ore", "www.ilsole24ore.com", "it"),
];

pub static NEWS_SECTIONS: &[&str] = &["markets", "business", "technology", "economy", "companies"];

pub static FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kate",
    "Luca", "Maya", "Noah", "Olga", "Priya", "Rafael", "Sofia", "Tom", "Yuki",
];

pub static LAST_NAMES: &[&str] = &[
    "Smith",
    "Müller",
    "Nakamura",
    "García",
    "Rossi",
    "Dubois",
    "Chen",
    "Kowalski",
    "Okafor",
    "Johansson",
    "Patel",
    "O'Brien",
    "Silva",
    "Novak",
    "Kim",
];

pub static HANDLE_WORDS: &[&str] = &[
    "trader", "bull", "bear", "macro", "quant", "value", "degen", "chart", "alpha", "theta",
    "hodl", "dividend",
];

pub static SUBREDDITS: &[&str] = &[
    "wallstreetbets",
    "stocks",
    "investing",
    "CryptoCurrency",
    "options",
];

/// An economic series template: code, unit, frequency, typical value, spread, which agency.
pub struct Series {
    pub code: &'static str,
    pub unit: &'static str,
    pub frequency: &'static str,
    pub value: f64,
    pub spread: f64,
    /// True when the central bank (not the statistics office) publishes it.
    pub central_bank: bool,
}

macro_rules! series {
    ($code:literal, $unit:literal, $freq:literal, $v:literal, $s:literal, $cb:literal) => {
        Series {
            code: $code,
            unit: $unit,
            frequency: $freq,
            value: $v,
            spread: $s,
            central_bank: $cb,
        }
    };
}

pub static SERIES: &[Series] = &[
    series!("CPI", "index", "monthly", 118.4, 2.5, false),
    series!("CPI.YOY", "percent", "monthly", 3.1, 0.8, false),
    series!("CORE_CPI.YOY", "percent", "monthly", 3.4, 0.6, false),
    series!("UNRATE", "percent", "monthly", 4.6, 1.5, false),
    series!("GDP", "bn", "quarterly", 2_150.0, 400.0, false),
    series!("GDP.QOQ", "percent", "quarterly", 0.4, 0.5, false),
    series!("POLICY_RATE", "percent", "daily", 3.75, 1.5, true),
    series!("PMI.MFG", "index", "monthly", 49.6, 3.0, false),
    series!("RETAIL_SALES.MOM", "percent", "monthly", 0.3, 0.7, false),
    series!("IND_PROD.YOY", "percent", "monthly", 0.8, 2.0, false),
    series!("TRADE_BALANCE", "bn", "monthly", -12.0, 30.0, false),
    series!("JOBLESS_CLAIMS", "thousands", "weekly", 221.0, 25.0, false),
    series!("POPULATION", "millions", "annual", 85.0, 40.0, false),
];

/// Country, statistics office, central bank, currency.
pub static COUNTRIES: &[(&str, &str, &str, &str)] = &[
    ("US", "BLS", "Federal Reserve", "USD"),
    ("GB", "ONS", "Bank of England", "GBP"),
    ("DE", "Destatis", "Deutsche Bundesbank", "EUR"),
    ("FR", "INSEE", "Banque de France", "EUR"),
    ("JP", "Statistics Bureau of Japan", "Bank of Japan", "JPY"),
    (
        "CN",
        "National Bureau of Statistics of China",
        "People's Bank of China",
        "CNY",
    ),
    ("EU", "Eurostat", "European Central Bank", "EUR"),
    ("CA", "Statistics Canada", "Bank of Canada", "CAD"),
    (
        "AU",
        "Australian Bureau of Statistics",
        "Reserve Bank of Australia",
        "AUD",
    ),
    ("BR", "IBGE", "Banco Central do Brasil", "BRL"),
    ("IN", "MOSPI", "Reserve Bank of India", "INR"),
    (
        "CH",
        "Swiss Federal Statistical Office",
        "Swiss National Bank",
        "CHF",
    ),
];

/// A supply-chain metric: its name (from the validator's list), unit, value range, where, who.
pub struct Metric {
    pub metric: &'static str,
    pub unit: &'static str,
    pub lo: f64,
    pub hi: f64,
    pub locations: &'static [&'static str],
    pub sources: &'static [&'static str],
}

static PORTS: &[&str] = &[
    "Port of Los Angeles",
    "Port of Long Beach",
    "Port of Shanghai",
    "Port of Singapore",
    "Port of Rotterdam",
    "Port of Hamburg",
    "Port of Santos (São Paulo)",
    "Port of Ningbo-Zhoushan",
];

pub static METRICS: &[Metric] = &[
    Metric {
        metric: "freight_rate",
        unit: "USD/FEU",
        lo: 1_400.0,
        hi: 8_200.0,
        locations: &[
            "Shanghai - Rotterdam",
            "Shanghai - Los Angeles",
            "Rotterdam - New York",
            "Shanghai - Genoa",
            "Ningbo - Hamburg",
            "Busan - Seattle",
        ],
        sources: &["Drewry WCI", "Freightos FBX", "Xeneta XSI"],
    },
    Metric {
        metric: "port_congestion",
        unit: "vessels waiting",
        lo: 0.0,
        hi: 120.0,
        locations: PORTS,
        sources: &["MarineTraffic", "Kuehne+Nagel", "Sea-Intelligence"],
    },
    Metric {
        metric: "inventory_level",
        unit: "index",
        lo: 38.0,
        hi: 62.0,
        locations: &[
            "US retail",
            "US manufacturing",
            "Euro area manufacturing",
            "China electronics",
            "Japan autos",
        ],
        sources: &["ISM", "US Census Bureau", "S&P Global"],
    },
    Metric {
        metric: "lead_time",
        unit: "days",
        lo: 12.0,
        hi: 130.0,
        locations: &[
            "Shenzhen electronics",
            "Taiwan semiconductors",
            "Vietnam apparel",
            "Mexico auto parts",
        ],
        sources: &["Flexport", "Susquehanna", "Resilinc"],
    },
    Metric {
        metric: "shipping_volume",
        unit: "TEU",
        lo: 150_000.0,
        hi: 4_200_000.0,
        locations: PORTS,
        sources: &["Port authority", "Container Trades Statistics"],
    },
    Metric {
        metric: "container_price",
        unit: "USD",
        lo: 1_100.0,
        hi: 4_600.0,
        locations: &[
            "40ft HC new, Shanghai",
            "20ft DC used, Rotterdam",
            "40ft HC used, Chicago",
        ],
        sources: &["Container xChange", "Drewry"],
    },
];

/// Feature names computed by the (simulated) feature service.
pub static FEATURE_NAMES: &[&str] = &[
    "rsi_14",
    "macd.signal",
    "macd.histogram",
    "volatility_20d",
    "momentum_5d",
    "vwap_ratio",
    "zscore.price_60d",
    "sentiment.news_24h",
    "sentiment.social_1h",
    "order_imbalance",
];

pub static MODEL_VERSIONS: &[&str] = &[
    "features-v3.2.1",
    "features-v3.3.0",
    "fx-2024.06",
    "nlp-sent-1.4",
];

pub static INSIGHT_MODELS: &[&str] = &[
    "anomaly-iforest-v2",
    "trend-lstm-v5",
    "sentiment-bert-1.4",
    "corr-engine-0.9",
];

/// Strategy families: slug, display name, kind of parameters.
pub static STRATEGIES: &[(&str, &str)] = &[
    ("mean-reversion", "Mean reversion"),
    ("momentum", "Cross-sectional momentum"),
    ("pairs", "Pairs trading"),
    ("breakout", "Volatility breakout"),
    ("news-sentiment", "News sentiment"),
    ("carry", "FX carry"),
];
