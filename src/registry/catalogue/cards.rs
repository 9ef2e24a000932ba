//! Model cards (issue 24): what a version is for, in Markdown, served with
//! its HTML rendering sanitised so that a page may insert it.
//!
//! Where a version's card comes from, in order:
//! 1. a card set through the API (`set_card`; table `version_cards`,
//!    migration 0016), which wins, so a team can describe a version whose
//!    files it cannot change (versions are immutable);
//! 2. the version's top-level file named `README.md` in any case (as the
//!    Hugging Face Hub and DataRobot's templates ship one);
//! 3. none: NotFound.
//!
//! Either is at most `MAX_CARD_BYTES`: a larger card is refused when set
//! (TooLarge), and a larger README is answered with a note saying so rather
//! than its text, without reading it.
//!
//! Rendering is pulldown-cmark (CommonMark with tables, strikethrough and
//! footnotes; YAML front matter, which Hub cards start with, is left out)
//! and then ammonia with the allow-list in `SANITISER`. It happens on every
//! read rather than once when a card is set, so every card is served under
//! today's policy, including cards set before it changed. Both libraries are
//! linear in their input, so a card at the cap renders in milliseconds.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use super::models::VersionFile;
use crate::registry::access::roles::Access;
use crate::registry::{now, store_error, Error, Principal, Registry, Result, Version, VersionRef};
use crate::store::sql::{self, params, OptionalExtension};

/// The largest card, set through the API or read from a README, in bytes
/// of Markdown: ten times a long Hub model card.
pub const MAX_CARD_BYTES: u64 = 256 * 1024;

/// Where a card came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardSource {
    /// Set through the API: when, and by whom (a username).
    Api { updated_at: String, updated_by: String },
    /// The version's README file, by its path.
    Readme { path: String },
}

impl CardSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            CardSource::Api { .. } => "api",
            CardSource::Readme { .. } => "readme",
        }
    }
}

/// A version's card. `markdown` and `html` are None only when the README
/// is too large to be a card; `note` then says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub model_id: String,
    pub version: i64,
    pub source: CardSource,
    pub markdown: Option<String>,
    /// `markdown` rendered and sanitised: safe to insert into a page.
    pub html: Option<String>,
    /// Something a reader should know about the card (too large, not UTF-8).
    pub note: Option<String>,
}

impl Registry {
    /// The card of the version `by` names: the one set through the API,
    /// else its README. Needs read access; NotFound when it has neither.
    pub fn card(&self, who: &Principal, model_id: &str, by: &VersionRef) -> Result<Card> {
        let version = self.find_version(who, model_id, by)?;
        if let Some(card) = self.stored_card(&version)? {
            return Ok(card);
        }
        let readme = readme_of(&version.files).ok_or_else(|| {
            Error::NotFound(format!(
                "version {} of model {model_id} has no card: no README.md among its top-level files, and none was set \
                 through the API",
                version.number
            ))
        })?;
        self.readme_card(&version, readme)
    }

    /// Sets the card of the version `by` names, replacing one set before;
    /// a README stays in the version's files but is no longer its card.
    /// Needs write access to the model.
    pub fn set_card(&self, who: &Principal, model_id: &str, by: &VersionRef, markdown: &str) -> Result<Card> {
        check_markdown(markdown)?;
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version = self.find_version(who, model_id, by)?;
        let at = now();
        tx.execute(
            "INSERT INTO version_cards (version_id, markdown, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (version_id) DO UPDATE SET markdown = excluded.markdown, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at",
            params![version.id, markdown, who.user_id, at],
        )?;
        tx.commit()?;
        Ok(api_card(&version, markdown.to_string(), at, who.username.clone()))
    }

    /// Removes the card set through the API, so the version's README (if
    /// any) is its card again. NotFound when none was set. Needs write
    /// access to the model.
    pub fn delete_card(&self, who: &Principal, model_id: &str, by: &VersionRef) -> Result<()> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version = self.find_version(who, model_id, by)?;
        if tx.execute("DELETE FROM version_cards WHERE version_id = ?1", [&version.id])? == 0 {
            return Err(Error::NotFound(format!("version {} of model {model_id} has no card set through the API", version.number)));
        }
        tx.commit()?;
        Ok(())
    }

    fn stored_card(&self, version: &Version) -> Result<Option<Card>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT c.markdown, c.updated_at, COALESCE(u.username, c.updated_by) FROM version_cards c
                 LEFT JOIN users u ON u.id = c.updated_by WHERE c.version_id = ?1",
            )?
            .query_row([&version.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .optional()?;
        Ok(row.map(|(markdown, updated_at, updated_by)| api_card(version, markdown, updated_at, updated_by)))
    }

    fn readme_card(&self, version: &Version, readme: &VersionFile) -> Result<Card> {
        let mut card = Card {
            model_id: version.model_id.clone(),
            version: version.number,
            source: CardSource::Readme { path: readme.path.clone() },
            markdown: None,
            html: None,
            note: None,
        };
        if readme.size > MAX_CARD_BYTES {
            card.note = Some(format!(
                "{} is {} bytes, more than the {MAX_CARD_BYTES} a card may be, so it is not shown here; download the \
                 file to read it, or set a shorter card through the API",
                readme.path, readme.size
            ));
            return Ok(card);
        }
        let mut bytes = Vec::with_capacity(readme.size as usize);
        self.open_blob(&readme.sha256)?.take(MAX_CARD_BYTES).read_to_end(&mut bytes).map_err(store_error)?;
        let markdown = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                card.note = Some(format!("{} is not UTF-8 text; the bytes that are not are shown as \u{FFFD}", readme.path));
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        card.html = Some(render(&markdown));
        card.markdown = Some(markdown);
        Ok(card)
    }
}

/// The card set through the API for `version`, rendered.
fn api_card(version: &Version, markdown: String, updated_at: String, updated_by: String) -> Card {
    Card {
        model_id: version.model_id.clone(),
        version: version.number,
        source: CardSource::Api { updated_at, updated_by },
        html: Some(render(&markdown)),
        markdown: Some(markdown),
        note: None,
    }
}

/// Gives the version `to` the card set through the API for `from`, if
/// any, inside the caller's write transaction (a model's copy).
pub(in crate::registry) fn copy_card(tx: &sql::Connection, from: &str, to: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO version_cards (version_id, markdown, updated_by, updated_at)
         SELECT ?2, markdown, updated_by, updated_at FROM version_cards WHERE version_id = ?1",
        [from, to],
    )?;
    Ok(())
}

/// A card set through the API: at most `MAX_CARD_BYTES`, and no NUL,
/// which PostgreSQL's text cannot hold.
fn check_markdown(markdown: &str) -> Result<()> {
    if markdown.len() as u64 > MAX_CARD_BYTES {
        return Err(Error::TooLarge(format!("a model card is at most {MAX_CARD_BYTES} bytes of Markdown; this one is {}", markdown.len())));
    }
    if markdown.contains('\0') {
        return Err(Error::invalid("markdown", "must not contain NUL characters"));
    }
    Ok(())
}

/// The version's README: a top-level file named README.md in any case.
/// `README.md` itself when a version has it beside another spelling (paths
/// are case-sensitive), else the first such path in byte order.
fn readme_of(files: &[VersionFile]) -> Option<&VersionFile> {
    let mut readmes: Vec<&VersionFile> = files.iter().filter(|f| f.path.eq_ignore_ascii_case("README.md")).collect();
    readmes.sort_by_key(|f| (f.path != "README.md", f.path.as_str()));
    readmes.first().copied()
}

/// Markdown to HTML that is safe to insert into a page: rendered, then
/// sanitised (`sanitiser`). Markdown images become links (`images_as_links`).
fn render(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, images_as_links(Parser::new_ext(markdown, options)));
    SANITISER.clean(&html).to_string()
}

/// A card shows no image: a picture from elsewhere would tell its host who
/// read the card and when (a tracking pixel), and the UI's policy allows
/// images from modelreg itself only. So `![alt](url)` becomes a link
/// reading "image: alt" that the reader may follow, or just that text where
/// the image is already inside a link (a badge), since links do not nest.
/// Raw `<img>` tags are removed by the sanitiser.
fn images_as_links<'a>(events: impl Iterator<Item = Event<'a>>) -> impl Iterator<Item = Event<'a>> {
    let label = || Event::Text(CowStr::Borrowed("image: "));
    let mut links_open = 0usize;
    // per image still open: whether it became a link
    let mut images: Vec<bool> = Vec::new();
    events.flat_map(move |event| {
        let replaced = match event {
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                let as_link = links_open == 0;
                images.push(as_link);
                if as_link {
                    links_open += 1;
                    [Some(Event::Start(Tag::Link { link_type, dest_url, title, id })), Some(label())]
                } else {
                    [Some(label()), None]
                }
            }
            Event::End(TagEnd::Image) => match images.pop() {
                Some(true) => {
                    links_open -= 1;
                    [Some(Event::End(TagEnd::Link)), None]
                }
                _ => [None, None],
            },
            Event::Start(Tag::Link { .. }) => {
                links_open += 1;
                [Some(event), None]
            }
            Event::End(TagEnd::Link) => {
                links_open = links_open.saturating_sub(1);
                [Some(event), None]
            }
            other => [Some(other), None],
        };
        replaced.into_iter().flatten()
    })
}

/// Text structure only. Tags: what CommonMark and its table, strikethrough
/// and footnote extensions produce, plus the few READMEs write by hand
/// (`details`, `kbd`…). Attributes: a link's `href` and `title`, a list's
/// `start`, a cell's spans; no `id` or `name` (a card's id could shadow
/// the page's own elements), no `class`, no `style` (the UI's policy
/// refuses inline style anyway), no event handler. URLs: http, https and
/// mailto, and relative ones except `#fragment` (the card has no ids to
/// point at, and in the UI the fragment is the page's own route). Links get
/// `rel="noopener noreferrer nofollow"`. Scripts, styles, frames, forms'
/// text areas, SVG and MathML go with everything inside them; any other
/// tag not listed is dropped and its text kept.
static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let tags = [
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "details",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
        "var",
    ];
    let dropped_with_content = [
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "noscript", "noembed", "noframes", "template", "textarea",
        "xmp", "svg", "math", "title",
    ];
    let attributes: HashMap<&str, HashSet<&str>> = [
        ("a", HashSet::from(["href", "title"])),
        ("abbr", HashSet::from(["title"])),
        ("ol", HashSet::from(["start"])),
        ("td", HashSet::from(["colspan", "rowspan"])),
        ("th", HashSet::from(["colspan", "rowspan"])),
    ]
    .into();
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(tags.into())
        .clean_content_tags(dropped_with_content.into())
        .generic_attributes(HashSet::new())
        .tag_attributes(attributes)
        .url_schemes(["http", "https", "mailto"].into())
        .url_relative(ammonia::UrlRelative::Custom(Box::new(relative_url)))
        .link_rel(Some("noopener noreferrer nofollow"))
        .strip_comments(true);
    builder
});

/// A relative URL as the card keeps it: as written, except a `#fragment`
/// alone, which is dropped (see `SANITISER`).
fn relative_url(url: &str) -> Option<Cow<'_, str>> {
    (!url.starts_with('#')).then_some(Cow::Borrowed(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> VersionFile {
        VersionFile { id: path.into(), path: path.into(), sha256: String::new(), size: 1, created_at: String::new() }
    }

    #[test]
    fn the_readme_is_a_top_level_readme_md_in_any_case_preferring_the_usual_spelling() {
        let pick = |paths: &[&str]| readme_of(&paths.iter().map(|p| file(p)).collect::<Vec<_>>()).map(|f| f.path.clone());
        assert_eq!(pick(&["model.pt", "README.md"]), Some("README.md".into()));
        assert_eq!(pick(&["readme.md"]), Some("readme.md".into()));
        assert_eq!(pick(&["readme.md", "ReadMe.MD", "README.md"]), Some("README.md".into()));
        assert_eq!(pick(&["readme.md", "ReadMe.MD"]), Some("ReadMe.MD".into()));
        assert_eq!(pick(&["docs/README.md", "README.txt", "README", "model.pt"]), None);
    }

    /// What a hostile card tries, each with the text that would betray it
    /// in the output (compared lowercase).
    const HOSTILE: &[(&str, &str)] = &[
        ("<script>alert(1)</script>", "<script"),
        ("<SCRIPT SRC=https://evil.example/x.js></SCRIPT>", "<script"),
        ("<img src=x onerror=alert(1)>", "onerror"),
        ("<img src=x onerror=alert(1)>", "<img"),
        ("[x](javascript:alert(1))", "javascript:"),
        ("<a href=\"JaVaScRiPt:alert(1)\">y</a>", "javascript:"),
        ("<a href=\"&#106;avascript:alert(1)\">y</a>", "javascript:"),
        ("<a href=\" java\tscript:alert(1)\">y</a>", "script:"),
        ("[v](vbscript:msgbox(1))", "vbscript:"),
        ("<iframe src=\"https://evil.example\"></iframe>", "<iframe"),
        ("<svg onload=alert(1)><circle/></svg>", "<svg"),
        ("<svg onload=alert(1)><circle/></svg>", "onload"),
        ("<math><mtext><img src=x onerror=alert(1)></mtext></math>", "onerror"),
        ("[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "data:"),
        ("![i](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)", "data:"),
        ("<object data=\"x.swf\"></object><embed src=\"x.swf\">", "<object"),
        ("<object data=\"x.swf\"></object><embed src=\"x.swf\">", "<embed"),
        ("<form action=\"https://evil.example\"><input name=key></form>", "<form"),
        ("<form action=\"https://evil.example\"><input name=key></form>", "<input"),
        ("<p style=\"background:url(javascript:alert(1))\">s</p>", "style="),
        ("<div onclick=\"alert(1)\">c</div>", "onclick"),
        ("<a href=\"https://ok.example\" onmouseover=\"alert(1)\">m</a>", "onmouseover"),
        ("<style>body{display:none}</style>", "<style"),
        ("<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">", "<meta"),
        ("<base href=\"https://evil.example/\">", "<base"),
        ("<link rel=stylesheet href=https://evil.example/x.css>", "<link"),
        ("<div id=\"main\">shadow</div><a name=\"live\">x</a>", "id="),
        ("<div id=\"main\">shadow</div><a name=\"live\">x</a>", "name="),
        ("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>", "onerror"),
        ("<!-- <img src=x onerror=alert(1)> -->", "<!--"),
        ("<a href=\"#/machines\">route</a>", "href=\"#"),
    ];

    #[test]
    fn a_hostile_card_keeps_none_of_its_tricks() {
        for (markdown, betrayal) in HOSTILE {
            let html = render(markdown).to_lowercase();
            assert!(!html.contains(betrayal), "{markdown:?} rendered as {html:?}");
        }
    }

    #[test]
    fn harmless_markdown_survives_with_links_made_safe() {
        let html = render(
            "---\nlicense: mit\ntags: [vision]\n---\n# Digits\n\nSee [the paper](https://example.org/p \"Paper\") or \
             <mailto:team@example.org>, and [the config](config.json).\n\n| a | b |\n|---|:-:|\n| 1 | ~~2~~ |\n\n\
             Trained twice.[^1]\n\n[^1]: Once on MNIST.\n\n<details><summary>More</summary>\n\n```python\nprint(1)\n```\n\n\
             </details>\n",
        );
        assert!(!html.contains("license: mit"), "front matter is not shown: {html}");
        assert!(html.contains("<h1>Digits</h1>"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/p\" title=\"Paper\" rel=\"noopener noreferrer nofollow\">the paper</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"mailto:team@example.org\" rel=\"noopener noreferrer nofollow\">"), "{html}");
        assert!(html.contains("<a href=\"config.json\" rel=\"noopener noreferrer nofollow\">the config</a>"), "{html}");
        assert!(html.contains("<table>") && html.contains("<th>b</th>") && html.contains("<del>2</del>"), "{html}");
        assert!(html.contains("<sup>") && html.contains("Once on MNIST."), "the footnote: {html}");
        assert!(html.contains("<details><summary>More</summary>") && html.contains("<pre><code>print(1)"), "{html}");
    }

    #[test]
    fn images_become_links_and_badges_their_text() {
        let html = render("![An architecture](https://example.org/a.png)\n\n[![build](https://ci.example/b.svg)](https://ci.example)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/a.png\" rel=\"noopener noreferrer nofollow\">image: An architecture</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"https://ci.example\" rel=\"noopener noreferrer nofollow\">image: build</a>"), "{html}");
    }

    #[test]
    fn cards_over_the_cap_or_with_nul_are_refused_naming_why() {
        assert!(check_markdown(&"x".repeat(MAX_CARD_BYTES as usize)).is_ok());
        let too_large = check_markdown(&"x".repeat(MAX_CARD_BYTES as usize + 1)).unwrap_err();
        assert!(matches!(&too_large, Error::TooLarge(m) if m.contains(&MAX_CARD_BYTES.to_string())), "{too_large:?}");
        assert!(matches!(check_markdown("a\0b"), Err(Error::Invalid { field, .. }) if field == "markdown"));
    }
}
