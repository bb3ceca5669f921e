//! News articles and social posts, each carrying the entities found in it. Entities travel inside
//! their parent record so that they are written in the same transaction, after it: an entity can never
//! exist without its article or post.

use super::check::{self, Ctx};
use super::{table, Family, Reason, ValidationError, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

table!(NEWS_ARTICLE, "news_article", partitioned = false, key = ["article_id"], [
    "article_id": UUID, "url": TEXT, "title": TEXT, "body": TEXT, "source": TEXT, "author": TEXT,
    "published_at": TIMESTAMPTZ, "language": TEXT, "version_at": TIMESTAMPTZ,
]);
table!(NEWS_ENTITY, "news_entity", partitioned = false, key = ["article_id", "entity_type", "name"], [
    "article_id": UUID, "name": TEXT, "entity_type": TEXT, "symbol": TEXT, "salience": FLOAT8,
    "sentiment": FLOAT8,
]);
table!(SOCIAL_POST, "social_post", partitioned = false, key = ["post_uid"], [
    "post_uid": UUID, "platform": TEXT, "post_id": TEXT, "author": TEXT, "body": TEXT, "url": TEXT,
    "posted_at": TIMESTAMPTZ, "likes": INT8, "shares": INT8, "language": TEXT, "version_at": TIMESTAMPTZ,
]);
table!(SOCIAL_ENTITY, "social_entity", partitioned = false, key = ["post_uid", "entity_type", "name"], [
    "post_uid": UUID, "name": TEXT, "entity_type": TEXT, "symbol": TEXT, "salience": FLOAT8,
    "sentiment": FLOAT8,
]);

pub const ENTITY_TYPES: &[&str] = &[
    "person",
    "organization",
    "location",
    "ticker",
    "product",
    "event",
    "other",
];
pub const PLATFORMS: &[&str] = &[
    "twitter",
    "reddit",
    "stocktwits",
    "mastodon",
    "bluesky",
    "other",
];
/// Most entities an article or post may name: more is an extractor gone wrong.
pub const MAX_ENTITIES: usize = 500;

#[derive(Debug, Deserialize)]
pub struct EntityWire {
    pub name: Option<String>,
    pub entity_type: Option<String>,
    pub symbol: Option<String>,
    pub salience: Option<f64>,
    pub sentiment: Option<f64>,
}

/// A validated entity mention.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub entity_type: &'static str,
    pub symbol: Option<String>,
    pub salience: Option<f64>,
    pub sentiment: Option<f64>,
}

fn entities(v: Option<Vec<EntityWire>>) -> Result<Vec<Entity>, ValidationError> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_ENTITIES {
        return Err(ValidationError::new(
            Reason::OutOfRange,
            "entities",
            format!("at most {MAX_ENTITIES} entities, got {}", v.len()),
        ));
    }
    let mut out: Vec<Entity> = Vec::with_capacity(v.len());
    for e in v {
        let e = Entity {
            name: check::text(e.name, "entities.name", 200)?,
            entity_type: check::one_of(e.entity_type, "entities.entity_type", ENTITY_TYPES)?,
            symbol: check::opt_symbol(e.symbol, "entities.symbol")?,
            salience: check::opt_in_range(e.salience, "entities.salience", 0.0, 1.0)?,
            sentiment: check::opt_in_range(e.sentiment, "entities.sentiment", -1.0, 1.0)?,
        };
        if out
            .iter()
            .any(|o| o.entity_type == e.entity_type && o.name == e.name)
        {
            return Err(ValidationError::new(
                Reason::DuplicateEntity,
                "entities",
                format!("names the {} {:?} twice", e.entity_type, e.name),
            ));
        }
        out.push(e);
    }
    Ok(out)
}

fn encode_entities(
    table: &Table,
    parent: &Uuid,
    entities: &[Entity],
    l: &Lineage<'_>,
    out: &mut StagedRows,
) -> Result<(), String> {
    for e in entities {
        out.buffers[1].row(
            table.types,
            &[
                parent,
                &e.name,
                &e.entity_type,
                &e.symbol,
                &e.salience,
                &e.sentiment,
            ],
            l,
        )?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct NewsArticleWire {
    pub url: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub source: Option<String>,
    pub author: Option<String>,
    pub published_at: Option<WireTime>,
    pub language: Option<String>,
    pub entities: Option<Vec<EntityWire>>,
}

/// A validated news article and its entities.
#[derive(Debug, Clone, PartialEq)]
pub struct NewsArticle {
    /// UUIDv5 of the normalized URL: the same story scraped twice gets the same id.
    pub article_id: Uuid,
    pub url: String,
    pub title: String,
    pub body: Option<String>,
    pub source: String,
    pub author: Option<String>,
    pub published_at: DateTime<Utc>,
    pub language: Option<String>,
    pub entities: Vec<Entity>,
}

impl Family for NewsArticle {
    type Wire = NewsArticleWire;
    const NAME: &'static str = "news_article";
    const TABLES: &'static [&'static Table] = &[&NEWS_ARTICLE, &NEWS_ENTITY];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: NewsArticleWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        let url = check::url(w.url, "url")?;
        Ok(Self {
            article_id: Uuid::new_v5(&Uuid::NAMESPACE_URL, url.as_bytes()),
            url,
            title: check::text(w.title, "title", 1000)?,
            body: check::opt_body(w.body, "body", 200_000)?,
            source: check::text(w.source, "source", 200)?,
            author: check::opt_text(w.author, "author", 200)?,
            published_at: check::time(w.published_at, "published_at", ctx)?,
            language: check::opt_language(w.language, "language")?,
            entities: entities(w.entities)?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            NEWS_ARTICLE.types,
            &[
                &self.article_id,
                &self.url,
                &self.title,
                &self.body,
                &self.source,
                &self.author,
                &self.published_at,
                &self.language,
                &version_at,
            ],
            l,
        )?;
        encode_entities(&NEWS_ENTITY, &self.article_id, &self.entities, l, out)
    }
}

#[derive(Debug, Deserialize)]
pub struct SocialPostWire {
    pub platform: Option<String>,
    pub post_id: Option<String>,
    pub author: Option<String>,
    pub text: Option<String>,
    pub url: Option<String>,
    pub posted_at: Option<WireTime>,
    pub likes: Option<i64>,
    pub shares: Option<i64>,
    pub language: Option<String>,
    pub entities: Option<Vec<EntityWire>>,
}

/// A validated social post and its entities.
#[derive(Debug, Clone, PartialEq)]
pub struct SocialPost {
    /// UUIDv5 of `platform:post_id`, the post's identity across scrapes.
    pub post_uid: Uuid,
    pub platform: &'static str,
    pub post_id: String,
    pub author: String,
    pub body: String,
    pub url: Option<String>,
    pub posted_at: DateTime<Utc>,
    pub likes: Option<i64>,
    pub shares: Option<i64>,
    pub language: Option<String>,
    pub entities: Vec<Entity>,
}

impl Family for SocialPost {
    type Wire = SocialPostWire;
    const NAME: &'static str = "social_post";
    const TABLES: &'static [&'static Table] = &[&SOCIAL_POST, &SOCIAL_ENTITY];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: SocialPostWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        let platform = check::one_of(w.platform, "platform", PLATFORMS)?;
        let post_id = check::text(w.post_id, "post_id", 128)?;
        let body = match w.text {
            Some(t) if !t.trim().is_empty() => check::opt_body(Some(t), "text", 40_000)?,
            _ => None,
        };
        Ok(Self {
            post_uid: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{platform}:{post_id}").as_bytes(),
            ),
            platform,
            post_id,
            author: check::text(w.author, "author", 200)?,
            body: check::required(body, "text")?,
            url: check::opt_url(w.url, "url")?,
            posted_at: check::time(w.posted_at, "posted_at", ctx)?,
            likes: check::opt_count(w.likes, "likes")?,
            shares: check::opt_count(w.shares, "shares")?,
            language: check::opt_language(w.language, "language")?,
            entities: entities(w.entities)?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            SOCIAL_POST.types,
            &[
                &self.post_uid,
                &self.platform,
                &self.post_id,
                &self.author,
                &self.body,
                &self.url,
                &self.posted_at,
                &self.likes,
                &self.shares,
                &self.language,
                &version_at,
            ],
            l,
        )?;
        encode_entities(&SOCIAL_ENTITY, &self.post_uid, &self.entities, l, out)
    }
}
