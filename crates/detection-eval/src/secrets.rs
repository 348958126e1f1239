//! Secrets: synthetic keys generated from each provider's published format,
//! embedded in ordinary sentences, scanned with the `secrets` pack.

use portcullis_policy::{Engine, Location};

/// One piece of a key format.
pub enum Part {
    Lit(&'static str),
    /// `n` characters from the alphabet.
    Chars(&'static str, usize),
}
use Part::{Chars, Lit};

const UPPER_DIGIT: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &str = "0123456789abcdef";
const DIGITS: &str = "0123456789";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Provider formats (public documentation; the gitleaks list served as a checklist).
pub fn formats() -> Vec<(&'static str, Vec<Part>)> {
    vec![
        (
            "AWS access key id",
            vec![Lit("AKIA"), Chars(UPPER_DIGIT, 16)],
        ),
        (
            "AWS secret (assignment)",
            vec![Lit("aws_secret_access_key = "), Chars(B64, 40)],
        ),
        ("GitHub classic token", vec![Lit("ghp_"), Chars(ALNUM, 36)]),
        ("GitHub OAuth token", vec![Lit("gho_"), Chars(ALNUM, 36)]),
        (
            "GitHub fine-grained token",
            vec![
                Lit("github_pat_"),
                Chars(ALNUM, 22),
                Lit("_"),
                Chars(ALNUM, 59),
            ],
        ),
        ("GitLab token", vec![Lit("glpat-"), Chars(URLSAFE, 20)]),
        (
            "Slack bot token",
            vec![
                Lit("xoxb-"),
                Chars(DIGITS, 12),
                Lit("-"),
                Chars(DIGITS, 13),
                Lit("-"),
                Chars(ALNUM, 24),
            ],
        ),
        (
            "Slack webhook",
            vec![
                Lit("https://hooks.slack.com/services/T"),
                Chars(UPPER_DIGIT, 8),
                Lit("/B"),
                Chars(UPPER_DIGIT, 8),
                Lit("/"),
                Chars(ALNUM, 24),
            ],
        ),
        ("Stripe secret key", vec![Lit("sk_live_"), Chars(ALNUM, 24)]),
        (
            "Stripe restricted key",
            vec![Lit("rk_live_"), Chars(ALNUM, 24)],
        ),
        (
            "OpenAI project key",
            vec![Lit("sk-proj-"), Chars(URLSAFE, 64)],
        ),
        (
            "Anthropic key",
            vec![Lit("sk-ant-api03-"), Chars(URLSAFE, 93), Lit("AA")],
        ),
        ("Google API key", vec![Lit("AIza"), Chars(URLSAFE, 35)]),
        ("Hugging Face token", vec![Lit("hf_"), Chars(LETTERS, 34)]),
        ("npm token", vec![Lit("npm_"), Chars(ALNUM, 36)]),
        (
            "SendGrid key",
            vec![Lit("SG."), Chars(URLSAFE, 22), Lit("."), Chars(URLSAFE, 43)],
        ),
        ("Twilio API key", vec![Lit("SK"), Chars(HEX, 32)]),
        ("Mailgun key", vec![Lit("key-"), Chars(HEX, 32)]),
        ("Shopify access token", vec![Lit("shpat_"), Chars(HEX, 32)]),
        ("DigitalOcean token", vec![Lit("dop_v1_"), Chars(HEX, 64)]),
        ("Databricks token", vec![Lit("dapi"), Chars(HEX, 32)]),
        (
            "Telegram bot token",
            vec![Chars(DIGITS, 10), Lit(":AA"), Chars(URLSAFE, 33)],
        ),
        (
            "PyPI token",
            vec![Lit("pypi-AgEIcHlwaS5vcmc"), Chars(URLSAFE, 60)],
        ),
        (
            "JWT",
            vec![
                Lit("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ"),
                Chars(URLSAFE, 40),
                Lit("."),
                Chars(URLSAFE, 43),
            ],
        ),
        (
            "RSA private key",
            vec![
                Lit("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"),
                Chars(B64, 48),
                Lit("\n-----END RSA PRIVATE KEY-----"),
            ],
        ),
        (
            "OpenSSH private key",
            vec![
                Lit("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"),
                Chars(B64, 40),
                Lit("\n-----END OPENSSH PRIVATE KEY-----"),
            ],
        ),
        (
            "PostgreSQL URL with password",
            vec![
                Lit("postgres://app:"),
                Chars(ALNUM, 16),
                Lit("@db.internal:5432/app"),
            ],
        ),
        (
            "MongoDB URL with password",
            vec![
                Lit("mongodb+srv://svc:"),
                Chars(ALNUM, 16),
                Lit("@cluster0."),
                Chars(LOWER, 5),
                Lit(".mongodb.net/db"),
            ],
        ),
        (
            "Azure storage key",
            vec![
                Lit("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="),
                Chars(B64, 86),
                Lit("=="),
            ],
        ),
    ]
}

const SENTENCES: [&str; 4] = [
    "here is the config, use {} for the deploy",
    "Can you check why {} stopped working?",
    "token: {}",
    "The service failed with credentials {} in the logs.",
];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_possible_truncation)]
        let r = (self.0 % n as u64) as usize;
        r
    }
}

fn generate(parts: &[Part], rng: &mut Rng) -> String {
    let mut s = String::new();
    for part in parts {
        match part {
            Lit(l) => s.push_str(l),
            Chars(alphabet, n) => {
                let chars: Vec<char> = alphabet.chars().collect();
                for _ in 0..*n {
                    s.push(chars[rng.below(chars.len())]);
                }
            }
        }
    }
    s
}

/// Per provider: (name, generated, detected).
pub fn evaluate(engine: &Engine, per_format: usize) -> Vec<(&'static str, usize, usize)> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    formats()
        .into_iter()
        .map(|(name, parts)| {
            let detected = (0..per_format)
                .filter(|i| {
                    let key = generate(&parts, &mut rng);
                    let text = SENTENCES[i % SENTENCES.len()].replace("{}", &key);
                    engine
                        .scan(Location::Request, &text)
                        .iter()
                        .any(|f| &*f.category == "secrets")
                })
                .count();
            (name, per_format, detected)
        })
        .collect()
}
