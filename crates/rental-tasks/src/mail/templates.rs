//! [`Templates`]: the messages' subjects and bodies, rendered from templates compiled into the binary.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use rental_service::MailMessage;

/// One kind of message: its name and the sources of its three parts.
struct Kind {
    name: &'static str,
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

macro_rules! kinds {
    ($($name:literal),* $(,)?) => {
        [$(Kind {
            name: $name,
            subject: include_str!(concat!("../../templates/", $name, ".subject.txt")),
            text: include_str!(concat!("../../templates/", $name, ".txt")),
            html: include_str!(concat!("../../templates/", $name, ".html")),
        }),*]
    };
}

const KINDS: [Kind; 8] = kinds![
    "welcome",
    "order_confirmation",
    "pickup_reminder",
    "return_reminder",
    "overdue_notice",
    "invoice",
    "password_reset",
    "daily_report",
];

/// The page every HTML part extends.
const LAYOUT: (&str, &str) = ("layout.html", include_str!("../../templates/layout.html"));

/// A rendered message: what [`MailMessage`] needs besides the recipient and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part, with every value escaped.
    pub html: String,
}

/// Why a template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// No message kind has this name.
    #[error("no mail template named {0:?}")]
    UnknownKind(String),
    /// A template does not compile (found by [`Templates::new`], so at start-up).
    #[error("mail template {name} does not compile")]
    Compile {
        /// The template's file name, e.g. `welcome.html`.
        name: String,
        /// minijinja's error, with the line.
        #[source]
        source: minijinja::Error,
    },
    /// Rendering failed, typically because the context lacks a variable the template uses.
    #[error("cannot render mail template {name}")]
    Render {
        /// The template's file name, e.g. `welcome.txt`.
        name: String,
        /// minijinja's error, naming what was undefined and where.
        #[source]
        source: minijinja::Error,
    },
}

/// Every message template, compiled once at start-up from the sources embedded in the binary.
///
/// Each kind has a subject, a text part and an HTML part (`<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`
/// in `crates/rental-tasks/templates/`; the HTML parts extend `layout.html`). Values are escaped in the HTML
/// part only. Undefined variables are errors, also in `{% if %}`: a context must carry every field its kind
/// uses (see the [module documentation](super) for the fields).
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every template.
    ///
    /// # Errors
    /// [`TemplateError::Compile`] naming the first template that does not compile.
    pub fn new() -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
        // Block tags on lines of their own leave no blank lines or indentation in the text parts.
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|source| TemplateError::Compile { name: "(syntax settings)".into(), source })?);
        let (layout, source) = LAYOUT;
        add(&mut env, layout.to_owned(), source)?;
        for kind in &KINDS {
            add(&mut env, format!("{}.subject.txt", kind.name), kind.subject)?;
            add(&mut env, format!("{}.txt", kind.name), kind.text)?;
            add(&mut env, format!("{}.html", kind.name), kind.html)?;
        }
        Ok(Self { env })
    }

    /// The names of the message kinds.
    pub fn kinds() -> impl Iterator<Item = &'static str> {
        KINDS.iter().map(|kind| kind.name)
    }

    /// Renders the three parts of `kind` with `context` (a JSON object with the kind's fields).
    ///
    /// # Errors
    /// [`TemplateError::UnknownKind`], or [`TemplateError::Render`] naming the part that failed (a field
    /// missing from the context, a value of the wrong type).
    pub fn render(&self, kind: &str, context: &serde_json::Value) -> Result<Rendered, TemplateError> {
        let Some(kind) = KINDS.iter().find(|k| k.name == kind) else {
            return Err(TemplateError::UnknownKind(kind.to_owned()));
        };
        let context = Value::from(Serde(context));
        let subject = self.render_one(&format!("{}.subject.txt", kind.name), &context)?;
        let text = self.render_one(&format!("{}.txt", kind.name), &context)?;
        let html = self.render_one(&format!("{}.html", kind.name), &context)?;
        Ok(Rendered { subject: subject.split_whitespace().collect::<Vec<_>>().join(" "), text, html })
    }

    /// Renders `kind` into a message for `to`, with `message_id` (see [`MailMessage::message_id`]) and no
    /// request id (the caller sets [`MailMessage::request_id`]).
    ///
    /// # Errors
    /// As [`Templates::render`].
    pub fn compose(
        &self,
        kind: &str,
        to: impl Into<String>,
        context: &serde_json::Value,
        message_id: Option<String>,
    ) -> Result<MailMessage, TemplateError> {
        let Rendered { subject, text, html } = self.render(kind, context)?;
        Ok(MailMessage { to: to.into(), subject, text, html: Some(html), message_id, request_id: None })
    }

    fn render_one(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let render_error = |source| TemplateError::Render { name: name.to_owned(), source };
        self.env.get_template(name).and_then(|template| template.render(context)).map_err(render_error)
    }
}

fn add(env: &mut Environment<'static>, name: String, source: &'static str) -> Result<(), TemplateError> {
    env.add_template_owned(name.clone(), source).map_err(|source| TemplateError::Compile { name, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let templates = Templates::new().unwrap();
        let rendered = templates
            .render("welcome", &json!({ "name": "Tom & <Jerry>", "login_url": "https://rental.example/login" }))
            .unwrap();
        assert_eq!(rendered.subject, "Welcome to Rental, Tom & <Jerry>");
        assert!(rendered.text.starts_with("Hello Tom & <Jerry>,\n"), "{}", rendered.text);
        assert!(rendered.html.contains("Hello Tom &amp; &lt;Jerry&gt;,"), "{}", rendered.html);
        assert!(!rendered.html.contains("<Jerry>"));
    }

    #[test]
    fn text_loops_leave_no_blank_lines() {
        let templates = Templates::new().unwrap();
        let line = json!({ "product": "Drill", "quantity": 2, "starts_at": "2026-03-01", "ends_at": "2026-03-03",
                           "total": "30.00" });
        let context = json!({ "name": "Jane", "order_id": "R-1", "lines": [line.clone(), line], "total": "60.00",
                              "currency": "EUR" });
        let text = templates.render("order_confirmation", &context).unwrap().text;
        assert!(
            text.contains(
                "reserved:\n\n- 2 x Drill, 2026-03-01 to 2026-03-03: 30.00 EUR\n- 2 x Drill, 2026-03-01 to 2026-03-03: 30.00 EUR\n\nTotal"
            ),
            "{text}"
        );
    }
}
