//! `portcullis users ...`

use super::{init_logging, read_stdin_line};
use crate::bootstrap;
use crate::cli::{GlobalArgs, UsersCommand};
use anyhow::{anyhow, Result};
use portcullis_core::audit::AuditDraft;
use portcullis_core::{password, Clock, Role, SystemClock};
use portcullis_store::NewUser;

const ACTOR: &str = "cli";

pub async fn run(global: &GlobalArgs, cmd: UsersCommand) -> Result<()> {
    let config = bootstrap::load_config(global, None)?;
    init_logging(&config)?;
    let opened = bootstrap::open(config).await?;
    let store = opened.store.clone();
    let clock = SystemClock;
    let result = async {
        match cmd {
            UsersCommand::Create {
                username,
                role,
                password_stdin,
            } => {
                let role: Role = role.parse()?;
                let (pw, generated) = password_from(password_stdin)?;
                let hash = hash(pw.clone()).await?;
                let user = store
                    .create_user(
                        NewUser {
                            username: username.clone(),
                            password_hash: hash,
                            role,
                            must_change_password: generated,
                        },
                        clock.now(),
                    )
                    .await?;
                store
                    .append_audit(
                        AuditDraft::new(ACTOR, "user.create", format!("user:{}", user.username))
                            .details(serde_json::json!({"role": role})),
                        clock.now(),
                    )
                    .await?;
                println!("created user {} ({role})", user.username);
                if generated {
                    println!("password: {pw}");
                    println!("(shown once; the user is asked to change it)");
                }
            }
            UsersCommand::SetPassword {
                username,
                password_stdin,
            } => {
                let (user, _) = store
                    .user_with_hash(&username)
                    .await?
                    .ok_or_else(|| anyhow!("no user named {username:?}"))?;
                let (pw, generated) = password_from(password_stdin)?;
                let hash = hash(pw.clone()).await?;
                store
                    .set_password(&user.id, &hash, generated, clock.now())
                    .await?;
                store
                    .revoke_user_sessions(&user.id, None, clock.now())
                    .await?;
                store
                    .append_audit(
                        AuditDraft::new(
                            ACTOR,
                            "user.password_reset",
                            format!("user:{}", user.username),
                        ),
                        clock.now(),
                    )
                    .await?;
                println!("password set for {username}; their sessions were ended");
                if generated {
                    println!("password: {pw}");
                }
            }
            UsersCommand::List { json } => {
                for user in store.list_users().await? {
                    if json {
                        println!("{}", serde_json::to_string(&user)?);
                    } else {
                        let state = if user.disabled { "disabled" } else { "active" };
                        println!(
                            "{:<24} {:<10} {:<8} {}",
                            user.username, user.role, state, user.id
                        );
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}

fn password_from(stdin: bool) -> Result<(String, bool)> {
    if stdin {
        let pw = read_stdin_line()?;
        password::check_strength(&pw)?;
        Ok((pw, false))
    } else {
        Ok((password::generate(), true))
    }
}

async fn hash(pw: String) -> Result<String> {
    Ok(password::hash_async(pw).await?)
}
