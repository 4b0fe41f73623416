//! Which text of a conversation is classified.

use crate::config::ClassifyText;
use crate::openai::{Message, Role};

/// The text to classify, per the configured choice; `None` when the conversation has no
/// non-blank text where the choice looks.
pub fn text_to_classify(messages: &[Message], which: ClassifyText) -> Option<String> {
    let non_blank = |m: &&Message| !m.content.0.trim().is_empty();
    let text = match which {
        ClassifyText::LastUser => messages
            .iter()
            .rev()
            .filter(|m| m.role == Role::User)
            .find(non_blank)
            .map(|m| m.content.0.clone())?,
        ClassifyText::AllUser => join(
            messages
                .iter()
                .filter(|m| m.role == Role::User)
                .filter(non_blank),
        ),
        ClassifyText::WithSystem => join(
            messages
                .iter()
                .filter(|m| matches!(m.role, Role::System | Role::Developer))
                .chain(messages.iter().filter(|m| m.role == Role::User))
                .filter(non_blank),
        ),
    };
    (!text.trim().is_empty()).then_some(text)
}

fn join<'a>(messages: impl Iterator<Item = &'a Message>) -> String {
    messages
        .map(|m| m.content.0.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Content;

    fn msg(role: Role, text: &str) -> Message {
        Message {
            role,
            content: Content(text.into()),
        }
    }

    fn conversation() -> Vec<Message> {
        vec![
            msg(Role::System, "You are a tutor."),
            msg(Role::User, "first question"),
            msg(Role::Assistant, "an answer"),
            msg(Role::User, "second question"),
            msg(Role::User, "   "),
        ]
    }

    #[test]
    fn each_choice_takes_its_text() {
        let c = conversation();
        assert_eq!(
            text_to_classify(&c, ClassifyText::LastUser).unwrap(),
            "second question"
        );
        assert_eq!(
            text_to_classify(&c, ClassifyText::AllUser).unwrap(),
            "first question\nsecond question"
        );
        assert_eq!(
            text_to_classify(&c, ClassifyText::WithSystem).unwrap(),
            "You are a tutor.\nfirst question\nsecond question"
        );
    }

    #[test]
    fn no_user_text_is_none() {
        let c = vec![msg(Role::System, "sys"), msg(Role::User, " ")];
        assert_eq!(text_to_classify(&c, ClassifyText::LastUser), None);
        assert_eq!(text_to_classify(&c, ClassifyText::AllUser), None);
    }
}
