//! The cache's PII screen: a cached answer is replayed to other clients, so an answer (or a
//! prompt) holding personal data is never stored.
//!
//! Every write runs the regex recognisers (e-mail, phone, payment card, IBAN, US SSN, IP
//! address, URL; those of `signals.pii.detector.recognizers` when configured) over the
//! answer's text, synchronously. When the engine runs a PII detector with a model, the model
//! screens the answer too. The prompt is screened by the engine's analysis when a detector
//! runs, and by the same regexes otherwise. Only a verdict leaves this module: nothing found is
//! kept, logged or counted by value.

use std::sync::Arc;

use semrouter_embedder::BackendError;

use crate::cache::CachedAnswer;
use crate::engine::signals::pii::{PiiConfigError, PiiDetector, PiiSettings};
use crate::openai::Message;

/// The detectors a cache write is screened with.
pub struct PiiScreen {
    /// The regex recognisers alone (synchronous).
    patterns: PiiDetector,
    /// The engine's detector, when it has a model.
    model: Option<Arc<PiiDetector>>,
}

impl PiiScreen {
    /// A screen over the engine's detector (used for its model when it has one) and the regex
    /// recognisers of `settings`.
    pub fn new(
        engine_detector: Option<Arc<PiiDetector>>,
        settings: &PiiSettings,
    ) -> Result<Self, PiiConfigError> {
        Ok(Self {
            patterns: PiiDetector::new(None, settings.clone())?,
            model: engine_detector.filter(|d| d.has_model()),
        })
    }

    /// Whether the regexes find PII in the answer's text (content and reasoning).
    pub fn answer_has_patterns(&self, answer: &CachedAnswer) -> bool {
        self.found(&answer.content)
            || answer
                .reasoning_content
                .as_deref()
                .is_some_and(|r| self.found(r))
    }

    /// Whether the regexes find PII in any message of the prompt.
    pub fn prompt_has_patterns(&self, messages: &[Message]) -> bool {
        messages.iter().any(|m| self.found(&m.content.0))
    }

    /// The detector whose model screens answers, when one runs.
    pub fn model(&self) -> Option<&Arc<PiiDetector>> {
        self.model.as_ref()
    }

    fn found(&self, text: &str) -> bool {
        !text.is_empty() && !self.patterns.detect_patterns(text).is_empty()
    }
}

/// Whether `detector` (regexes and model) finds PII in the answer's text.
pub async fn answer_has_pii(
    detector: &PiiDetector,
    answer: &CachedAnswer,
) -> Result<bool, BackendError> {
    for text in std::iter::once(answer.content.as_str()).chain(answer.reasoning_content.as_deref())
    {
        if !text.trim().is_empty() && !detector.detect(text).await?.entities.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::signals::pii::Recognizer;

    fn answer(content: &str) -> CachedAnswer {
        CachedAnswer {
            content: content.into(),
            reasoning_content: None,
            upstream_model: None,
            usage: None,
        }
    }

    #[test]
    fn regexes_refuse_answers_and_prompts_with_personal_data() {
        let screen = PiiScreen::new(None, &PiiSettings::default()).unwrap();
        assert!(screen.model().is_none());
        for text in [
            "Write to jane.doe@example.com.",
            "Call +44 20 7946 0958 today.",
            "Card: 4111 1111 1111 1111",
        ] {
            assert!(screen.answer_has_patterns(&answer(text)), "{text}");
        }
        assert!(!screen.answer_has_patterns(&answer("Canberra is the capital of Australia.")));
        let mut reasoning = answer("Done.");
        reasoning.reasoning_content = Some("the user's mail is jane.doe@example.com".into());
        assert!(
            screen.answer_has_patterns(&reasoning),
            "reasoning text is replayed too"
        );
        let prompt: Vec<Message> = serde_json::from_value(serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "my mail is jane.doe@example.com"}]}
        ]))
        .unwrap();
        assert!(screen.prompt_has_patterns(&prompt));
        assert!(!screen.prompt_has_patterns(&prompt[..1]));
    }

    #[test]
    fn configured_recognisers_decide_what_counts() {
        let settings = PiiSettings {
            recognizers: vec![Recognizer::Email],
            ..PiiSettings::default()
        };
        let screen = PiiScreen::new(None, &settings).unwrap();
        assert!(!screen.answer_has_patterns(&answer("See https://www.rust-lang.org for more.")));
        assert!(screen.answer_has_patterns(&answer("Mail jane.doe@example.com.")));
    }

    #[tokio::test]
    async fn a_detector_without_a_model_is_not_used_as_the_model() {
        let engine = Arc::new(PiiDetector::new(None, PiiSettings::default()).unwrap());
        let screen = PiiScreen::new(Some(Arc::clone(&engine)), &PiiSettings::default()).unwrap();
        assert!(screen.model().is_none(), "the regexes already ran");
        assert!(
            answer_has_pii(&engine, &answer("Mail jane.doe@example.com."))
                .await
                .unwrap()
        );
        assert!(!answer_has_pii(&engine, &answer("No personal data here."))
            .await
            .unwrap());
    }
}
