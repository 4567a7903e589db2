//! Which parts of a handed-off conversation are worth a knowledge-base suggestion: each substantive
//! answer from the team, paired with the visitor's message(s) just before it. Greetings, requests
//! for a person and pleasantries ("Hi, this is Ana, how can I help?", "thanks!") are neither
//! questions nor answers.

/// A question and the team's answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub question: String,
    pub answer: String,
}

/// Words of small talk in the four languages: a message made only of these says nothing.
const CHATTER: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "you",
    "ok",
    "okay",
    "great",
    "perfect",
    "cool",
    "bye",
    "goodbye",
    "please",
    "yes",
    "no",
    "sure",
    "good",
    "morning",
    "afternoon",
    "evening",
    "much",
    "very",
    "a",
    "lot",
    "again",
    "cheers",
    "awesome",
    "nice",
    "fine",
    "alright",
    "got",
    "it",
    "i",
    "see",
    "understood",
    "wonderful",
    "day",
    "have",
    "the",
    "same",
    "to",
    "welcome",
    "your",
    "re",
    "are",
    "bonjour",
    "merci",
    "salut",
    "beaucoup",
    "bonsoir",
    "oui",
    "non",
    "d",
    "accord",
    "parfait",
    "super",
    "au",
    "revoir",
    "hola",
    "gracias",
    "vale",
    "muchas",
    "buenos",
    "días",
    "dias",
    "perfecto",
    "sí",
    "si",
    "adiós",
    "adios",
    "hallo",
    "danke",
    "schön",
    "vielen",
    "dank",
    "ja",
    "nein",
    "gut",
    "super",
    "tschüss",
    "guten",
    "tag",
    "bitte",
];

/// Phrases a team member opens or closes with, in the four languages.
const PLEASANTRIES: &[&str] = &[
    "how can i help",
    "how may i help",
    "how can we help",
    "what can i do for you",
    "anything else",
    "you're welcome",
    "you are welcome",
    "have a nice day",
    "have a great day",
    "glad i could help",
    "happy to help",
    "comment puis-je vous aider",
    "que puis-je faire pour vous",
    "autre chose",
    "je vous en prie",
    "bonne journée",
    "en qué puedo ayudar",
    "algo más",
    "de nada",
    "que tengas un buen día",
    "wie kann ich helfen",
    "wie kann ich ihnen helfen",
    "sonst noch",
    "gern geschehen",
    "schönen tag",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// A short message of small talk: its words are chatter but for at most one (a name: "Great,
/// thanks Sam"), and it asks nothing.
fn is_chatter(text: &str) -> bool {
    let words = words(text);
    let other = words.iter().filter(|w| !CHATTER.contains(&w.as_str())).count();
    other == 0 || (other == 1 && words.len() >= 2 && words.len() <= 5 && !text.contains(['?', '¿']))
}

/// Words a greeting opens with.
const GREETINGS: &[&str] = &["hi", "hello", "hey", "bonjour", "salut", "hola", "hallo", "servus"];

/// A short opening or closing line of the team's ("Hi, Sam from support here!", "Hi, this is
/// Ana, how can I help?", "Anything else?").
fn is_pleasantry(text: &str) -> bool {
    let lowered = text.to_lowercase();
    let words = words(text);
    let greeting = words.first().is_some_and(|w| GREETINGS.contains(&w.as_str())) && words.len() <= 8;
    is_chatter(text) || greeting || (words.len() <= 14 && PLEASANTRIES.iter().any(|p| lowered.contains(p)))
}

/// The exchanges of one conversation, in order. `messages` are (role, text) with role `visitor`,
/// `agent` or `bot`; `asks_for_person` tells a request for a person (it is no question).
pub fn exchanges<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    asks_for_person: impl Fn(&str) -> bool,
) -> Vec<Exchange> {
    let mut found: Vec<Exchange> = Vec::new();
    let mut asked: Vec<&str> = Vec::new();
    // Whether the last substantive message was the team's (a next answer continues it).
    let mut answering = false;
    for (role, text) in messages {
        let text = text.trim();
        match role {
            "visitor" if !text.is_empty() && !is_chatter(text) && !asks_for_person(text) => {
                if answering {
                    asked.clear();
                    answering = false;
                }
                asked.push(text);
            }
            "agent" if !text.is_empty() && !is_pleasantry(text) => {
                if !asked.is_empty() && !answering {
                    found.push(Exchange { question: asked.join("\n"), answer: text.to_owned() });
                    answering = true;
                } else if let Some(last) = found.last_mut().filter(|_| answering) {
                    last.answer.push_str("\n\n");
                    last.answer.push_str(text);
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(text: &str) -> bool {
        text.to_lowercase().contains("human") || text.to_lowercase().contains("person")
    }

    #[test]
    fn the_greeting_and_the_request_for_a_person_are_skipped() {
        let found = exchanges(
            [
                ("visitor", "Can I speak to a human?"),
                ("bot", "I'm connecting you with a member of our support team."),
                ("agent", "Hi, this is Ana, how can I help?"),
                ("visitor", "Do you ship tents to Iceland?"),
                ("agent", "Yes: tents ship to Iceland in 5 to 7 working days."),
                ("visitor", "Great, thanks!"),
                ("agent", "You're welcome, have a nice day!"),
            ],
            person,
        );
        assert_eq!(
            found,
            [Exchange {
                question: "Do you ship tents to Iceland?".into(),
                answer: "Yes: tents ship to Iceland in 5 to 7 working days.".into()
            }]
        );
    }

    #[test]
    fn one_conversation_can_teach_several_answers_and_an_answer_may_take_two_messages() {
        let found = exchanges(
            [
                ("visitor", "Do you rent kayaks?"),
                ("visitor", "I want to speak with a person"),
                ("agent", "Yes, kayaks are 25 euros a day."),
                ("agent", "Paddles are included."),
                ("visitor", "Merci ! Et les cartes cadeaux ?"),
                ("agent", "Oui, de 10 à 200 euros."),
            ],
            person,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].question, "Do you rent kayaks?");
        assert_eq!(found[0].answer, "Yes, kayaks are 25 euros a day.\n\nPaddles are included.");
        assert_eq!(found[1].question, "Merci ! Et les cartes cadeaux ?");
    }

    #[test]
    fn an_answer_without_a_question_teaches_nothing() {
        assert!(exchanges([("agent", "We are closed on Sunday."), ("visitor", "ok")], person).is_empty());
        assert!(is_chatter("Thank you very much!") && is_chatter("Vielen Dank") && !is_chatter("Thanks, where is it?"));
        assert!(is_chatter("Great, thanks Sam") && !is_chatter("Refund my order"));
        assert!(
            is_pleasantry("Hi, Sam from support here!")
                && !is_pleasantry("Hi! Yes, we ship to Canada in 6 days, and duties are paid on delivery.")
        );
    }
}
