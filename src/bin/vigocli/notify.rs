//! `vigocli notify test`: one test mail through the server's SMTP settings
//! (`smtp` in vigosrv.yaml), to check them before a failure needs them.

use clap::Subcommand;
use vigo_proto::admin::NotifyTestAnswer;

use crate::admin::AdminClient;
use crate::output::{call, print_json};
use crate::{Globals, Output};

/// The `notify` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NotifyCommand {
    /// Ask the running server to send a test mail now, to every `smtp.to`;
    /// exits non-zero with the SMTP server's answer when it fails.
    Test,
}

/// Runs one `notify` subcommand.
pub(crate) async fn run(command: NotifyCommand, globals: &Globals) -> anyhow::Result<()> {
    let client = AdminClient::open(&globals.config).await?;
    match command {
        NotifyCommand::Test => {
            let answer: NotifyTestAnswer = call(
                client
                    .post("/v1/admin/notify/test", &serde_json::json!({}))
                    .await,
            )?;
            match globals.output {
                Output::Json => print_json(&answer)?,
                Output::Text => println!(
                    "Test mail sent to {} through {}.",
                    answer.to.join(", "),
                    answer.server
                ),
            }
        }
    }
    Ok(())
}
