//! The first-party customer-service plugin: an FAQ knowledge base with
//! scored answers, support tickets, translation through the host LLM, and
//! per-user preferences so replies can be personalised.

mod faq;
mod preferences;
mod tickets;
mod translate;

use warden_sdk::{Effect, Plugin, Tool};

pub struct Chatbot;

impl Plugin for Chatbot {
    const ID: &'static str = "warden.chatbot";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new(
                "answer_faq",
                "Find the FAQ entries that best answer a customer question, with scores from 0 to 1.",
                Effect::Reads,
                faq::answer,
            ),
            Tool::new(
                "add_faq",
                "Add a question and its answer to the knowledge base.",
                Effect::Writes,
                faq::add,
            ),
            Tool::new(
                "create_ticket",
                "Open a support ticket for the current user.",
                Effect::Writes,
                tickets::create,
            ),
            Tool::new(
                "get_ticket",
                "Fetch a ticket by id.",
                Effect::Reads,
                tickets::get,
            ),
            Tool::new(
                "list_tickets",
                "List tickets, newest first, optionally by status.",
                Effect::Reads,
                tickets::list,
            ),
            Tool::new(
                "update_ticket",
                "Change a ticket's status or add a note.",
                Effect::Writes,
                tickets::update,
            ),
            Tool::new(
                "translate",
                "Translate text into another language with the LLM.",
                Effect::Reads,
                translate::translate,
            ),
            Tool::new(
                "remember_preference",
                "Remember a preference of the current user (e.g. language, tone).",
                Effect::Writes,
                preferences::remember,
            ),
            Tool::new(
                "get_preferences",
                "All remembered preferences of the current user.",
                Effect::Reads,
                preferences::get,
            ),
        ]
    }
}

warden_sdk::export_plugin!(Chatbot);
