//! The streaming fairness processor: outcome events in, `FairnessReported` per closed
//! window and attribute set out, `FairnessAlertRaised` when a threshold is crossed.
//!
//! **Outcomes** per interaction (event time: when the customer sent the message):
//!
//! | outcome | from | predicted | ground truth |
//! |---|---|---|---|
//! | `negative_sentiment` | `SentimentScored` | labelled negative | — |
//! | `escalated` | `ReviewRequested` / automatic `ResponseApproved` | sent to review | — |
//! | `auto_approved` | the same | approved without a person | — |
//! | `slow_draft` | `ResponseDrafted` | drafting took longer than `slow_draft_ms` | — |
//! | `sentiment_vs_reviewer` | the `ReviewDecided` that settles the item (+ the model's label from its `ReviewRequested`) | the model said negative | the reviewer's reading (`corrected_sentiment`, else the model's label stands) |
//!
//! Each outcome is counted per attribute set — every configured sensitive attribute on its
//! own and each configured intersection — in event-time windows ([`crate::window`]).
//! Labels arrive when reviewers decide, long after the message, so the labelled outcome's
//! windows accept `label_allowed_lateness`.
//!
//! **Watermark**: the minimum, over the partitions of the watermark topics (those every
//! interaction passes through: `interactions.scored` and `responses.drafted`), of the
//! latest event time each has delivered — a consumer that reads one partition's or one
//! topic's backlog before another's does not make the other's outcomes late. Every
//! partition of those topics (as many as topology.toml gives them) holds the watermark
//! from the first input on, also before it has delivered anything, until it has been
//! silent for `idle_partition` of processing time (a quiet partition, or one another
//! replica of the group owns, must not stall reports forever). The watermark never goes
//! back. A draft whose decision (automatic approval, or a review request on its own
//! topic) has not arrived yet holds the watermark at its time too.
//!
//! **Same input, same reports**: interactions arrive in event-time order within a
//! partition (as producers write them, keyed by conversation), so with every topic that
//! carries an interaction's outcomes holding the watermark, no outcome can arrive after
//! its window closed, however fast or slow each upstream processor runs: a window holds
//! the same outcomes in every run. Two things stay timing-dependent, by nature: a
//! partition silent for `idle_partition` of processing time stops holding the watermark,
//! and `slow_draft` measures drafting time. Reviewers' decisions (the labelled outcome)
//! come when people make them and are placed within `label_allowed_lateness`.
//!
//! **Exactly once**: an event id is counted once (a set of the ids in open windows), so
//! replaying the store on start ([`FairnessProcessor::replay`]) and Kafka redelivering the
//! same events double-count nothing; a restart loses nothing because the state is rebuilt
//! from the log. Report ids derive from the window (outcome, attributes, start, end), not
//! from the input that happened to close it, so a report re-emitted after a restart is the
//! same event and the store keeps one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use insights_processor::{Context, Output, ProcessError, Processor, Source};
use insights_schemas::{
    Envelope, Event, FairnessAlertRaised, FairnessReported, GroupStats as EventGroup,
    InteractionContext, MetricInterval, SentimentLabel, Timestamp,
};
use uuid::Uuid;

pub use crate::alerts::AlertThresholds;
use crate::alerts::assess;
pub use crate::config::{FairnessConfig, parse_duration};
use crate::evidence::wilson;
use crate::metrics::{GroupStats, Privileged, Report};
use crate::window::{ClosedWindow, Windows};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The processor's name (and the events' producer).
pub const NAME: &str = "fairness";

/// The outcomes, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Outcome {
    NegativeSentiment,
    Escalated,
    AutoApproved,
    SlowDraft,
    SentimentVsReviewer,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Outcome::NegativeSentiment,
        Outcome::Escalated,
        Outcome::AutoApproved,
        Outcome::SlowDraft,
        Outcome::SentimentVsReviewer,
    ];

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NegativeSentiment => "negative_sentiment",
            Outcome::Escalated => "escalated",
            Outcome::AutoApproved => "auto_approved",
            Outcome::SlowDraft => "slow_draft",
            Outcome::SentimentVsReviewer => "sentiment_vs_reviewer",
        }
    }

    fn labelled(self) -> bool {
        self == Outcome::SentimentVsReviewer
    }
}

/// Windows of one outcome over one attribute set.
#[derive(Debug)]
struct Track {
    outcome: Outcome,
    attributes: Vec<String>,
    windows: Windows,
}

/// The streaming processor; see the module docs.
#[derive(Debug)]
pub struct FairnessProcessor {
    config: FairnessConfig,
    tracks: Vec<Track>,
    /// The watermark (see the module docs).
    watermark: Option<i64>,
    /// Per partition of the watermark topics: its latest event time (none yet), and when
    /// (processing time) it last delivered (or, never having delivered, when it was
    /// first expected).
    marks: HashMap<(String, i32), (Option<i64>, i64)>,
    /// Drafts read from Kafka whose decision has not arrived: their event time and when
    /// (processing time) they came; and decisions whose draft has not arrived (read from
    /// their topic first), with their event time.
    undecided: HashMap<Uuid, (i64, i64)>,
    decided_early: HashMap<Uuid, i64>,
    /// Processing time after which a silent partition stops holding the watermark.
    idle_after: i64,
    /// Ids counted, with their event time, while their windows may be open.
    seen: HashMap<Uuid, i64>,
    seen_by_time: BTreeSet<(i64, Uuid)>,
    /// The model's label per open review item (for the labelled outcome).
    review_labels: HashMap<Uuid, (String, i64)>,
    /// Outcomes dropped as later than every window that could take them.
    late: u64,
    horizon: i64,
}

fn f(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl FairnessProcessor {
    /// A processor with `config`, its state empty.
    pub fn new(config: FairnessConfig) -> Result<Self, Vec<String>> {
        config.validate()?;
        let (spec, labelled) = config.specs().map_err(|e| vec![e])?;
        let sets: Vec<Vec<String>> = config
            .attributes
            .iter()
            .map(|a| vec![a.clone()])
            .chain(config.intersections.iter().cloned())
            .collect();
        let mut tracks = Vec::new();
        for outcome in Outcome::ALL {
            for attributes in &sets {
                tracks.push(Track {
                    outcome,
                    attributes: attributes.clone(),
                    windows: Windows::new(if outcome.labelled() { labelled } else { spec }),
                });
            }
        }
        let horizon = labelled.size + labelled.allowed_lateness.max(spec.allowed_lateness);
        let idle_after = parse_duration(&config.idle_partition).map_err(|e| vec![e])?;
        Ok(FairnessProcessor {
            config,
            tracks,
            watermark: None,
            marks: HashMap::new(),
            undecided: HashMap::new(),
            decided_early: HashMap::new(),
            idle_after,
            seen: HashMap::new(),
            seen_by_time: BTreeSet::new(),
            review_labels: HashMap::new(),
            late: 0,
            horizon,
        })
    }

    /// Outcomes dropped as too late so far.
    pub fn late(&self) -> u64 {
        self.late + self.tracks.iter().map(|t| t.windows.late).sum::<u64>()
    }

    /// Rebuilds state from stored events (in store order), before the first input: counts
    /// them (once per id), closing no window — the watermark comes from live input only
    /// (see [`FairnessProcessor::next_watermark`]), so a window is never reported before
    /// every outcome in it could arrive, also after a restart.
    pub fn replay<'a>(&mut self, events: impl IntoIterator<Item = &'a Envelope>) {
        for e in events {
            let closed = self.observe(e, None);
            debug_assert!(closed.is_empty(), "a replay closes no window");
        }
    }

    /// The outcomes an event carries: (outcome, event time, predicted, actual).
    #[allow(clippy::type_complexity)]
    fn outcomes<'e>(
        &mut self,
        e: &'e Envelope,
    ) -> Option<(&'e InteractionContext, Vec<(Outcome, bool, Option<bool>)>)> {
        let negative = |label: &str| label == "negative";
        match &e.event {
            Event::SentimentScored(s) => Some((
                &s.context,
                vec![(
                    Outcome::NegativeSentiment,
                    s.label == SentimentLabel::Negative,
                    None,
                )],
            )),
            Event::ResponseApproved(a) if a.automatic => Some((
                &a.context,
                vec![
                    (Outcome::Escalated, false, None),
                    (Outcome::AutoApproved, true, None),
                ],
            )),
            Event::ReviewRequested(r) => {
                if !r.sentiment_label.is_empty() {
                    self.review_labels.insert(
                        e.event_id,
                        (r.sentiment_label.clone(), r.context.sent_at.micros()),
                    );
                }
                Some((
                    &r.context,
                    vec![
                        (Outcome::Escalated, true, None),
                        (Outcome::AutoApproved, false, None),
                    ],
                ))
            }
            Event::ResponseDrafted(d) => Some((
                &d.context,
                vec![(
                    Outcome::SlowDraft,
                    d.latency_micros
                        > i64::try_from(self.config.slow_draft_ms).unwrap_or(i64::MAX) * 1_000,
                    None,
                )],
            )),
            // The decision that settles the item is the reviewers' reading (a first opinion
            // waits for the second; a dispute for the ruling).
            Event::ReviewDecided(d) if d.settles => {
                let (model, _) = self.review_labels.remove(&d.review_id)?;
                let truth = d.corrected_sentiment.as_deref().unwrap_or(&model);
                Some((
                    &d.context,
                    vec![(
                        Outcome::SentimentVsReviewer,
                        negative(&model),
                        Some(negative(truth)),
                    )],
                ))
            }
            _ => None,
        }
    }

    /// The watermark after an event at `t` from `source` at processing time `now`
    /// (`None`: the store, in log order).
    fn next_watermark(&mut self, t: i64, source: Option<(&Source, i64)>) -> Option<i64> {
        let candidate = match source {
            // The store holds each processor's outputs in the order it wrote them, with no
            // trace of their partitions: the log cannot tell which windows are complete,
            // so a replay counts and closes nothing. The live input (redelivered from the
            // committed offsets, or new) moves the watermark from there.
            None => None,
            Some((s, now)) if self.config.watermark_topics.contains(&s.topic) => {
                if self.marks.is_empty() {
                    for topic in &self.config.watermark_topics {
                        let n = self.config.watermark_partitions.get(topic).copied();
                        let n = i32::try_from(n.unwrap_or(0)).unwrap_or(i32::MAX);
                        for p in 0..n {
                            self.marks.insert((topic.clone(), p), (None, now));
                        }
                    }
                }
                let mark = self
                    .marks
                    .entry((s.topic.clone(), s.partition))
                    .or_insert((None, now));
                *mark = (Some(mark.0.map_or(t, |m| m.max(t))), now);
                let live: Vec<Option<i64>> = self
                    .marks
                    .values()
                    .filter(|(_, seen)| now - seen <= self.idle_after)
                    .map(|(m, _)| *m)
                    .collect();
                // A live partition that has delivered nothing yet holds everything back.
                live.iter()
                    .copied()
                    .collect::<Option<Vec<i64>>>()
                    .and_then(|m| m.into_iter().min())
            }
            Some(_) => None,
        };
        match (self.watermark, candidate) {
            (Some(w), Some(c)) => Some(w.max(c)),
            (w, c) => w.or(c),
        }
    }

    /// Counts one event (once per id) and returns the reports (and alerts) of the windows
    /// it closed.
    fn observe(&mut self, e: &Envelope, source: Option<(&Source, i64)>) -> Vec<Output> {
        if self.seen.contains_key(&e.event_id) {
            return Vec::new();
        }
        let Some((context, outcomes)) = self.outcomes(e) else {
            return Vec::new();
        };
        let t = context.sent_at.micros();
        let demographics = context.demographics.clone();
        self.seen.insert(e.event_id, t);
        self.seen_by_time.insert((t, e.event_id));
        if let Some((_, now)) = source {
            self.track_decision(e, t, now);
        }
        let watermark = self.next_watermark(t, source);
        self.watermark = watermark;
        // A window closes only once the decisions of its drafts are in (or, as for a quiet
        // partition, `idle_partition` has passed without them).
        let idle_after = self.idle_after;
        let now = source.map(|(_, now)| now);
        let oldest_undecided = self
            .undecided
            .values()
            .filter(|(_, since)| now.is_none_or(|now| now - since <= idle_after))
            .map(|(t, _)| *t)
            .min();
        let watermark = match (watermark, oldest_undecided) {
            (Some(w), Some(u)) => Some(w.min(u)),
            (w, _) => w,
        };
        let mut closed: Vec<(usize, ClosedWindow)> = Vec::new();
        for (i, track) in self.tracks.iter_mut().enumerate() {
            if let Some((_, predicted, actual)) =
                outcomes.iter().find(|(o, _, _)| *o == track.outcome)
            {
                let key: Vec<String> = track
                    .attributes
                    .iter()
                    .map(|a| {
                        demographics
                            .get(a)
                            .cloned()
                            .unwrap_or_else(|| "unknown".into())
                    })
                    .collect();
                track.windows.insert(t, key, *predicted, *actual);
            }
            // Every track follows the one watermark, so that a rare outcome's windows close
            // on time too.
            if let Some(w) = watermark {
                closed.extend(track.windows.advance(w).into_iter().map(|c| (i, c)));
            }
        }
        if let (false, Some(w)) = (closed.is_empty(), watermark) {
            self.prune(w);
        }
        closed
            .into_iter()
            .flat_map(|(i, w)| self.report(i, &w))
            .collect()
    }

    /// Keeps track of drafts whose decision (an automatic approval on the drafts' topic, a
    /// review request on its own) has not been seen.
    fn track_decision(&mut self, e: &Envelope, t: i64, now: i64) {
        let decided = match &e.event {
            Event::ResponseDrafted(_) => {
                if self.decided_early.remove(&e.event_id).is_none() {
                    self.undecided.insert(e.event_id, (t, now));
                }
                return;
            }
            Event::ResponseApproved(a) if a.automatic => a.draft_event_id,
            Event::ReviewRequested(r) => r.draft_event_id,
            _ => return,
        };
        if self.undecided.remove(&decided).is_none() {
            self.decided_early.insert(decided, t);
        }
    }

    /// Forgets ids and review labels older than any window that could still take them.
    fn prune(&mut self, watermark: i64) {
        let before = watermark - self.horizon;
        while let Some(&(t, id)) = self.seen_by_time.first() {
            if t >= before {
                break;
            }
            self.seen_by_time.pop_first();
            self.seen.remove(&id);
        }
        self.review_labels.retain(|_, (_, t)| *t >= before);
        self.decided_early.retain(|_, t| *t >= before);
        let idle_after = self.idle_after;
        if let Some(newest) = self.undecided.values().map(|(_, since)| *since).max() {
            self.undecided
                .retain(|_, (_, since)| newest - *since <= idle_after);
        }
    }

    /// The id of a window's report.
    pub fn report_id(outcome: &str, attributes: &[String], start: i64, end: i64) -> Uuid {
        let key = format!("window/{outcome}/{}/{start}/{end}", attributes.join("+"));
        Envelope::derived_id(NAME, &key, Timestamp(start), 0)
    }

    fn alert_id(report: Uuid, metric: &str) -> Uuid {
        Envelope::derived_id(NAME, &format!("alert/{report}/{metric}"), Timestamp(0), 0)
    }

    fn report(&self, track: usize, w: &ClosedWindow) -> Vec<Output> {
        let track = &self.tracks[track];
        let privileged = track.attributes.iter().find_map(|a| {
            self.config.privileged.get(a).map(|v| Privileged {
                attribute: a.clone(),
                value: v.clone(),
            })
        });
        let r = w.tally.report(
            &track.attributes,
            track.outcome.labelled(),
            self.config.min_group_size,
            privileged.as_ref(),
        );
        let outcome = track.outcome.as_str();
        let id = Self::report_id(outcome, &track.attributes, w.start, w.end);
        let stream = format!("fairness-{outcome}-{}", track.attributes.join("+"));
        let rules = self
            .config
            .outcome_alerts
            .get(outcome)
            .unwrap_or(&self.config.alerts);
        // The bootstrap's seed comes from the window: the same interval in every run.
        let seed = u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap_or_default());
        let assessment = assess(rules, &r, &w.tally, privileged.as_ref(), seed);
        let event_group = |g: &GroupStats| {
            let bounds = wilson(g.counts.selected, g.counts.n, rules.confidence);
            EventGroup {
                group: g.name(),
                count: i64::try_from(g.counts.n).unwrap_or(i64::MAX),
                positives: i64::try_from(g.counts.selected).unwrap_or(i64::MAX),
                selection_rate: f(g.selection_rate),
                true_positive_rate: g.true_positive_rate.and_then(f),
                false_positive_rate: g.false_positive_rate.and_then(f),
                selection_rate_low: bounds.map(|b| b.low),
                selection_rate_high: bounds.map(|b| b.high),
            }
        };
        let metrics = metric_map(&r);
        let report = FairnessReported {
            window_start: Timestamp(w.start),
            window_end: Timestamp(w.end),
            attributes: track.attributes.clone(),
            outcome: outcome.into(),
            groups: r.groups.iter().map(event_group).collect(),
            metrics: metrics.clone(),
            min_group_size: i32::try_from(self.config.min_group_size).unwrap_or(i32::MAX),
            excluded_groups: r.excluded_groups.iter().map(GroupStats::name).collect(),
            confidence: Some(rules.confidence),
            intervals: assessment
                .intervals
                .iter()
                .map(|(k, b)| {
                    (
                        k.clone(),
                        MetricInterval {
                            low: b.low,
                            high: b.high,
                        },
                    )
                })
                .collect(),
        };
        let mut out = vec![Output {
            topic: self.config.reports_topic.clone(),
            stream_id: stream.clone(),
            key: stream.clone(),
            event: Event::FairnessReported(report),
        }];
        for alert in assessment.alerts {
            out.push(Output {
                topic: self.config.reports_topic.clone(),
                stream_id: stream.clone(),
                key: stream.clone(),
                event: Event::FairnessAlertRaised(FairnessAlertRaised {
                    report_event_id: id,
                    window_start: Timestamp(w.start),
                    window_end: Timestamp(w.end),
                    attributes: track.attributes.clone(),
                    outcome: outcome.into(),
                    metric: alert.metric.into(),
                    value: alert.value,
                    threshold: alert.threshold,
                    groups: alert.groups,
                    confidence: Some(alert.confidence),
                    interval_low: Some(alert.interval.low),
                    interval_high: Some(alert.interval.high),
                    evidence: Some(alert.evidence),
                    method: Some(alert.method.into()),
                }),
            });
        }
        out
    }
}

/// Every metric of a report by name; undefined ones (NaN) are `None`.
pub fn metric_map(r: &Report) -> BTreeMap<String, Option<f64>> {
    let mut m = BTreeMap::new();
    let mut put = |name: &str, v: Option<f64>| {
        m.insert(name.to_owned(), v.and_then(f));
    };
    put(
        "demographic_parity_difference",
        Some(r.demographic_parity_difference),
    );
    put(
        "demographic_parity_difference_to_overall",
        Some(r.demographic_parity_difference_to_overall),
    );
    put("demographic_parity_ratio", Some(r.demographic_parity_ratio));
    put(
        "demographic_parity_ratio_to_overall",
        Some(r.demographic_parity_ratio_to_overall),
    );
    put("equalized_odds_difference", r.equalized_odds_difference);
    put(
        "equalized_odds_difference_mean",
        r.equalized_odds_difference_mean,
    );
    put("equalized_odds_ratio", r.equalized_odds_ratio);
    put("equalized_odds_ratio_mean", r.equalized_odds_ratio_mean);
    put(
        "equal_opportunity_difference",
        r.equal_opportunity_difference,
    );
    put("equal_opportunity_ratio", r.equal_opportunity_ratio);
    put("disparate_impact", r.disparate_impact);
    put(
        "statistical_parity_difference",
        r.statistical_parity_difference,
    );
    m
}

impl Processor for FairnessProcessor {
    type Input = Envelope;

    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> &str {
        VERSION
    }

    /// The outcome events: after a restart the open windows are counted again from the
    /// store (each event id once, so Kafka redelivering some of them counts nothing twice).
    fn restores_from(&self) -> &'static [&'static str] {
        &[
            "SentimentScored",
            "ResponseDrafted",
            "ResponseApproved",
            "ReviewRequested",
            "ReviewDecided",
        ]
    }

    fn restore(&mut self, events: &[Envelope]) {
        self.replay(events);
    }

    fn process(
        &mut self,
        input: &Envelope,
        ctx: &Context<'_>,
    ) -> Result<Vec<Output>, ProcessError> {
        match &input.event {
            Event::SentimentScored(_)
            | Event::ResponseDrafted(_)
            | Event::ResponseApproved(_)
            | Event::ReviewRequested(_)
            | Event::ReviewDecided(_)
            | Event::ReviewClaimed(_)
            | Event::ReviewReleased(_)
            | Event::ReviewEscalated(_) => {
                Ok(self.observe(input, Some((ctx.source, ctx.now.micros()))))
            }
            other => Err(ProcessError::Poison(format!(
                "fairness consumes outcome events, not {}",
                other.event_type()
            ))),
        }
    }

    fn output_event_id(&self, output: &Output) -> Option<Uuid> {
        match &output.event {
            Event::FairnessReported(r) => Some(Self::report_id(
                &r.outcome,
                &r.attributes,
                r.window_start.micros(),
                r.window_end.micros(),
            )),
            Event::FairnessAlertRaised(a) => Some(Self::alert_id(a.report_event_id, &a.metric)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use insights_processor::Source;
    use insights_schemas::{ReviewDecided, ReviewDecision, ReviewRequested, SentimentScored};

    use super::*;
    use crate::metrics::Tally;

    const DAY: i64 = 86_400_000_000;
    const T0: i64 = 1_790_035_200_000_000; // a midnight, UTC

    fn context(n: u128, t: i64, gender: &str, age: &str) -> InteractionContext {
        InteractionContext {
            interaction_id: format!("i-{n}"),
            conversation_id: format!("c-{n}"),
            tenant_id: "acme".into(),
            customer_pseudonym: "p".into(),
            channel: "chat".into(),
            product: None,
            language: Some("en".into()),
            demographics: BTreeMap::from([
                ("gender".into(), gender.into()),
                ("age_band".into(), age.into()),
            ]),
            sent_at: Timestamp(t),
        }
    }

    fn envelope(n: u128, event: Event) -> Envelope {
        Envelope {
            event_id: Uuid::from_u128(n),
            schema_version: 1,
            stream_id: "s".into(),
            causation_id: None,
            correlation_id: "c".into(),
            occurred_at: Timestamp(T0),
            producer: "test".into(),
            producer_version: "1".into(),
            event,
        }
    }

    fn scored(n: u128, t: i64, gender: &str, age: &str, negative: bool) -> Envelope {
        envelope(
            n,
            Event::SentimentScored(SentimentScored {
                context: context(n, t, gender, age),
                text: String::new(),
                label: if negative {
                    SentimentLabel::Negative
                } else {
                    SentimentLabel::Positive
                },
                scores: BTreeMap::new(),
                confidence: 0.9,
                model_name: "m".into(),
                model_version: "1".into(),
                backend: "transformer".into(),
                fallback: false,
                latency_micros: 1,
            }),
        )
    }

    fn config() -> FairnessConfig {
        FairnessConfig {
            attributes: vec!["gender".into(), "age_band".into()],
            intersections: vec![vec!["gender".into(), "age_band".into()]],
            min_group_size: 5,
            privileged: BTreeMap::from([("gender".into(), "male".into())]),
            ..Default::default()
        }
    }

    fn run(p: &mut FairnessProcessor, inputs: &[Envelope]) -> Vec<Output> {
        let source = Source {
            topic: "interactions.scored".into(),
            partition: 0,
            offset: 0,
        };
        let mut out = Vec::new();
        for e in inputs {
            let id = e.event_id.to_string();
            let ctx = Context {
                input_id: &id,
                correlation_id: "c",
                input_time: e.occurred_at,
                now: Timestamp(T0),
                source: &source,
            };
            out.extend(p.process(e, &ctx).expect("processed"));
        }
        out
    }

    /// Day one: women flagged negative 80% of the time, men 20%; then one event on day
    /// three moves the watermark past day one's end plus lateness.
    fn biased_days() -> Vec<Envelope> {
        let mut events = Vec::new();
        let mut n = 0u128;
        // 40 each: enough for the intervals to exclude the thresholds.
        for (gender, negatives) in [("female", 32), ("male", 8)] {
            for i in 0..40 {
                n += 1;
                let age = if i % 2 == 0 { "18-24" } else { "65+" };
                events.push(scored(
                    n,
                    T0 + (n as i64) * 60_000_000,
                    gender,
                    age,
                    i < negatives,
                ));
            }
        }
        events.push(scored(
            1_000,
            T0 + 2 * DAY + 7_200_000_000,
            "female",
            "18-24",
            false,
        ));
        events
    }

    fn reports(out: &[Output]) -> Vec<&FairnessReported> {
        out.iter()
            .filter_map(|o| match &o.event {
                Event::FairnessReported(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_closed_window_reports_every_attribute_set_with_the_batch_metrics() {
        let mut p = FairnessProcessor::new(config()).expect("valid");
        let out = run(&mut p, &biased_days());
        let reports = reports(&out);
        let negative: Vec<_> = reports
            .iter()
            .filter(|r| r.outcome == "negative_sentiment")
            .collect();
        assert_eq!(negative.len(), 3, "gender, age_band and their intersection");
        let by_gender = negative
            .iter()
            .find(|r| r.attributes == ["gender"])
            .expect("gender report");
        assert_eq!(
            (
                by_gender.window_start.micros(),
                by_gender.window_end.micros()
            ),
            (T0, T0 + DAY)
        );
        assert_eq!(by_gender.groups.len(), 2);
        assert_eq!(by_gender.groups[0].group, "gender=female");
        assert_eq!(
            (by_gender.groups[0].count, by_gender.groups[0].positives),
            (40, 32)
        );
        // With its interval (Wilson at the configured confidence) and the metrics'.
        let female = &by_gender.groups[0];
        assert_eq!(by_gender.confidence, Some(0.95));
        let wilson = crate::evidence::wilson(32, 40, 0.95).expect("an interval");
        assert_eq!(
            (female.selection_rate_low, female.selection_rate_high),
            (Some(wilson.low), Some(wilson.high))
        );
        for metric in [
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "disparate_impact",
            "statistical_parity_difference",
        ] {
            let i = by_gender.intervals.get(metric).expect(metric);
            let v = by_gender.metrics[metric].expect(metric);
            assert!(i.low < v && v < i.high, "{metric}: {v} in {i:?}");
        }

        // The same rows through the batch computation (golden-tested against Fairlearn and
        // AIF360) give the same metric values.
        let mut tally = Tally::default();
        for e in &biased_days()[..80] {
            let Event::SentimentScored(s) = &e.event else {
                unreachable!()
            };
            tally.add(
                vec![s.context.demographics["gender"].clone()],
                s.label == SentimentLabel::Negative,
                None,
            );
        }
        let privileged = Privileged {
            attribute: "gender".into(),
            value: "male".into(),
        };
        let batch = tally.report(&["gender".into()], false, 5, Some(&privileged));
        assert_eq!(by_gender.metrics, metric_map(&batch));
        assert!(
            (by_gender.metrics["demographic_parity_difference"].unwrap_or(0.0) - 0.6).abs() < 1e-12
        );
        assert!((by_gender.metrics["disparate_impact"].unwrap_or(0.0) - 4.0).abs() < 1e-12);

        // Intersections with groups below min_group_size are listed, not compared.
        let both = negative
            .iter()
            .find(|r| r.attributes.len() == 2)
            .expect("intersection report");
        assert_eq!(both.groups.len(), 4);
        assert!(both.excluded_groups.is_empty());
    }

    #[test]
    fn crossing_thresholds_raises_alerts_naming_the_groups() {
        let mut p = FairnessProcessor::new(config()).expect("valid");
        let out = run(&mut p, &biased_days());
        let alerts: Vec<&FairnessAlertRaised> = out
            .iter()
            .filter_map(|o| match &o.event {
                Event::FairnessAlertRaised(a) if a.attributes == ["gender"] => Some(a),
                _ => None,
            })
            .collect();
        let metrics: Vec<&str> = alerts.iter().map(|a| a.metric.as_str()).collect();
        assert_eq!(
            metrics,
            [
                "demographic_parity_difference",
                "disparate_impact",
                "four_fifths"
            ]
        );
        let four_fifths = alerts[2];
        assert_eq!(four_fifths.groups, ["gender=male"]);
        assert!((four_fifths.value - 0.25).abs() < 1e-12);
        // Each says how sure it is: an interval beyond the threshold at the confidence.
        let dpd = alerts[0];
        assert_eq!(dpd.method.as_deref(), Some("newcombe"));
        assert_eq!(dpd.confidence, Some(0.95));
        assert!(dpd.interval_low.is_some_and(|low| low > 0.2), "{dpd:?}");
        assert!(dpd.evidence.is_some_and(|e| e > 0.95), "{dpd:?}");
        assert!(four_fifths.interval_high.is_some_and(|high| high < 0.8));
        // Alerts name their report by the report's own id.
        let report = reports(&out)
            .into_iter()
            .find(|r| r.outcome == "negative_sentiment" && r.attributes == ["gender"])
            .expect("report");
        assert_eq!(
            alerts[0].report_event_id,
            FairnessProcessor::report_id("negative_sentiment", &report.attributes, T0, T0 + DAY)
        );
    }

    #[test]
    fn an_outcome_can_have_rules_of_its_own() {
        let quiet = AlertThresholds {
            demographic_parity_difference: None,
            disparate_impact: None,
            four_fifths: false,
            ..AlertThresholds::default()
        };
        let mut config = config();
        config
            .outcome_alerts
            .insert("negative_sentiment".into(), quiet.clone());
        let mut p = FairnessProcessor::new(config.clone()).expect("valid");
        let out = run(&mut p, &biased_days());
        assert!(
            !out.iter()
                .any(|o| matches!(&o.event, Event::FairnessAlertRaised(_))),
            "the outcome's own rules raise nothing"
        );
        config.outcome_alerts.insert(
            "bogus".into(),
            AlertThresholds {
                confidence: 0.3,
                ..quiet
            },
        );
        let problems = FairnessProcessor::new(config).expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("outcome_alerts names `bogus`"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("outcome_alerts.bogus.confidence = 0.3"),
            "{problems:?}"
        );
    }

    #[test]
    fn replay_then_redelivery_counts_each_event_once() {
        let events = biased_days();
        let mut once = FairnessProcessor::new(config()).expect("valid");
        let single = run(&mut once, &events);

        // A restart: the state is rebuilt from the store (the first 15 events were
        // stored), then Kafka redelivers from an older offset — everything again.
        let mut restarted = FairnessProcessor::new(config()).expect("valid");
        restarted.replay(&events[..15]);
        let again = run(&mut restarted, &events);
        assert_eq!(reports(&single), reports(&again));
        let ids = |out: &[Output], p: &FairnessProcessor| -> Vec<Uuid> {
            out.iter().filter_map(|o| p.output_event_id(o)).collect()
        };
        assert_eq!(ids(&single, &once), ids(&again, &restarted));
    }

    #[test]
    fn report_ids_come_from_the_window_not_from_the_input_that_closed_it() {
        let mut forward = FairnessProcessor::new(config()).expect("valid");
        let mut events = biased_days();
        let a = run(&mut forward, &events);
        // Another delivery order closes the window on another input.
        events[..20].reverse();
        events.push(scored(2_000, T0 + 3 * DAY, "male", "65+", true));
        let mut reversed = FairnessProcessor::new(config()).expect("valid");
        let b = run(&mut reversed, &events);
        let first = |out: &[Output], p: &FairnessProcessor| {
            out.iter()
                .find(|o| matches!(&o.event, Event::FairnessReported(r) if r.window_start.micros() == T0))
                .and_then(|o| p.output_event_id(o))
        };
        assert!(first(&a, &forward).is_some());
        assert_eq!(first(&a, &forward), first(&b, &reversed));
    }

    #[test]
    fn reviewers_decisions_label_the_models_sentiment() {
        let mut p = FairnessProcessor::new(FairnessConfig {
            label_allowed_lateness: "1h".into(),
            ..config()
        })
        .expect("valid");
        let mut events = Vec::new();
        for n in 0..12u128 {
            let gender = if n % 2 == 0 { "female" } else { "male" };
            let t = T0 + n as i64 * 1_000_000;
            let review = 10_000 + n;
            events.push(envelope(
                review,
                Event::ReviewRequested(ReviewRequested {
                    context: context(n, t, gender, "18-24"),
                    draft_event_id: Uuid::nil(),
                    reasons: vec![],
                    priority: "normal".into(),
                    sla_deadline: Timestamp(t),
                    draft_text: String::new(),
                    inquiry_text: String::new(),
                    intent: "general".into(),
                    sentiment_label: "negative".into(),
                    backend: "template".into(),
                    opinions_required: 1,
                }),
            ));
            // Reviewers disagree with the model for every third message.
            events.push(envelope(
                20_000 + n,
                Event::ReviewDecided(ReviewDecided {
                    context: context(n, t, gender, "18-24"),
                    review_id: Uuid::from_u128(review),
                    reviewer: "r".into(),
                    decision: ReviewDecision::Approve,
                    edited_text: None,
                    reason: None,
                    corrected_sentiment: (n % 3 == 0).then(|| "neutral".into()),
                    role: "sole".into(),
                    settles: true,
                }),
            ));
        }
        events.push(scored(99_999, T0 + 2 * DAY, "female", "18-24", false));
        let out = run(&mut p, &events);
        let labelled = reports(&out)
            .into_iter()
            .find(|r| r.outcome == "sentiment_vs_reviewer" && r.attributes == ["gender"])
            .expect("a labelled report");
        let female = &labelled.groups[0];
        assert_eq!(female.count, 6);
        // The model said negative for all six women (n = 0, 2, …, 10); reviewers read
        // n = 0 and 6 as neutral: 4 true positives, 2 false positives, no negatives kept.
        assert_eq!(female.false_positive_rate, Some(1.0));
        assert_eq!(female.true_positive_rate, Some(1.0));
        assert!(labelled.metrics["equalized_odds_difference"].is_some());
    }

    /// One partition's backlog read before another's: the slower partition holds the
    /// watermark, so its outcomes are not late; once silent past `idle_partition`, it no
    /// longer does, nor does a partition that never delivered.
    #[test]
    fn the_watermark_is_the_slowest_partitions_until_it_goes_quiet() {
        let mut p = FairnessProcessor::new(config()).expect("valid");
        let deliver = |p: &mut FairnessProcessor, partition: i32, now: i64, e: &Envelope| {
            let source = Source {
                topic: "interactions.scored".into(),
                partition,
                offset: 0,
            };
            let id = e.event_id.to_string();
            let ctx = Context {
                input_id: &id,
                correlation_id: "c",
                input_time: e.occurred_at,
                now: Timestamp(now),
                source: &source,
            };
            p.process(e, &ctx).expect("processed")
        };
        let minute = 60_000_000;
        // Partition 1 has delivered one early outcome; partition 0 then delivers three days.
        assert!(deliver(&mut p, 1, T0, &scored(1, T0 + minute, "male", "65+", false)).is_empty());
        for n in 0..30u128 {
            let t = T0 + (n as i64) * DAY / 10;
            let out = deliver(&mut p, 0, T0, &scored(100 + n, t, "female", "18-24", true));
            assert!(
                reports(&out).is_empty(),
                "partition 1 holds the watermark at day one"
            );
        }
        // Partition 1's backlog of day one is on time, and the window closes only when it
        // has moved on.
        for n in 0..9u128 {
            let out = deliver(
                &mut p,
                1,
                T0,
                &scored(200 + n, T0 + (n as i64 + 2) * minute, "male", "65+", false),
            );
            assert!(reports(&out).is_empty());
        }
        let out = deliver(
            &mut p,
            1,
            T0,
            &scored(300, T0 + 2 * DAY, "male", "65+", false),
        );
        let day_one = reports(&out)
            .into_iter()
            .find(|r| r.outcome == "negative_sentiment" && r.attributes == ["gender"])
            .expect("day one closes");
        let male = day_one
            .groups
            .iter()
            .find(|g| g.group == "gender=male")
            .expect("male");
        assert_eq!(male.count, 10, "none of partition 1's outcomes was late");
        assert_eq!(p.late(), 0);

        // Three partitions expected: partition 1 never delivers and partition 2 once; both
        // hold the watermark until they have been silent for `idle_partition` (10 min).
        let mut p = FairnessProcessor::new(FairnessConfig {
            watermark_partitions: [("interactions.scored".to_owned(), 3)].into(),
            ..config()
        })
        .expect("valid");
        deliver(&mut p, 2, T0, &scored(1, T0, "male", "65+", false));
        let mut closed = 0;
        for n in 0..30u128 {
            let t = T0 + (n as i64) * DAY / 10;
            closed += reports(&deliver(
                &mut p,
                0,
                T0 + 60_000_000,
                &scored(100 + n, t, "female", "18-24", true),
            ))
            .len();
        }
        assert_eq!(closed, 0, "partitions 1 and 2 hold the watermark");
        let later = T0 + 11 * 60_000_000;
        for n in 30..40u128 {
            let t = T0 + (n as i64) * DAY / 10;
            closed += reports(&deliver(
                &mut p,
                0,
                later,
                &scored(100 + n, t, "female", "18-24", true),
            ))
            .len();
        }
        assert!(closed > 0, "a silent partition must not stall reports");
    }

    #[test]
    fn bad_configuration_and_foreign_events_are_refused() {
        let bad = FairnessConfig {
            window: "5x".into(),
            intersections: vec![vec!["gender".into()]],
            privileged: BTreeMap::from([("shoe_size".into(), "42".into())]),
            ..Default::default()
        };
        let problems = FairnessProcessor::new(bad).expect_err("invalid");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(parse_duration("90s"), Ok(90_000_000));
        assert_eq!(parse_duration("2d"), Ok(2 * DAY));

        let mut p = FairnessProcessor::new(config()).expect("valid");
        let mut e = scored(1, T0, "female", "18-24", true);
        e.event = Event::SubjectErased(insights_schemas::SubjectErased {
            subject: "s".into(),
            requested_by: "r".into(),
            key_destroyed_at: Timestamp(0),
        });
        let source = Source {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        };
        let ctx = Context {
            input_id: "x",
            correlation_id: "c",
            input_time: Timestamp(0),
            now: Timestamp(0),
            source: &source,
        };
        assert!(matches!(p.process(&e, &ctx), Err(ProcessError::Poison(_))));
    }
}
