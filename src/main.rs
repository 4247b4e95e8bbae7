//! `gslbd`: the command line. Maps each command to the library and errors to exit codes:
//! 0 success, 1 a config or runtime error, 2 a usage error (from clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gslbd::config::{self, Sources};
use gslbd::daemon;

#[derive(Parser)]
#[command(
    name = "gslbd",
    version,
    about = "Authoritative DNS that answers only with healthy servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (UDP and TCP; default 127.0.0.1:5353, zones from ./zones).
    Serve {
        #[command(flatten)]
        files: Files,
        /// Listen on ADDR:PORT for UDP and TCP (repeatable; replaces `listen` from the config).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// UDP sockets and threads per listen address (default: one per CPU).
        #[arg(long, value_name = "N")]
        udp_threads: Option<usize>,
        /// Admin API address (replaces `api.listen` from the config; default 127.0.0.1:8053).
        #[arg(long, value_name = "ADDR:PORT")]
        api: Option<SocketAddr>,
    },
    /// Validate everything `serve` would load; print problems as file:line:column: message.
    Check {
        #[command(flatten)]
        files: Files,
    },
    /// What would CLIENT get for NAME now, and why (same as `gslbd ctl explain`).
    Explain {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: ExplainArgs,
    },
    /// DNSSEC keys of a zone.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print the DS record(s) of a zone's keys, to put in the parent zone.
    Ds {
        #[command(flatten)]
        zone: ZoneKeys,
    },
    /// Talk to a running server's admin API.
    Ctl {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: CtlCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write a new signing key (BIND's K<zone>.+<alg>+<tag>.key and .private, mode 0600);
    /// never overwrites a file.
    Generate {
        #[command(flatten)]
        zone: ZoneKeys,
        /// ecdsap256sha256 (13) or ed25519 (15).
        #[arg(long, value_name = "ALGORITHM", default_value = "ecdsap256sha256")]
        algorithm: gslbd::dnssec::Algorithm,
    },
}

#[derive(Args)]
struct ZoneKeys {
    /// The zone, e.g. gslb.example.com.
    #[arg(long, value_name = "ZONE")]
    zone: String,
    /// The directory of the zone's keys.
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
}

impl ZoneKeys {
    fn zone(&self) -> Result<hickory_proto::rr::Name, String> {
        let mut name = hickory_proto::rr::Name::from_ascii(self.zone.trim())
            .map_err(|e| format!("--zone {:?} is not a domain name: {e}", self.zone))?;
        name.set_fqdn(true);
        Ok(name)
    }
}

#[derive(Args)]
struct Conn {
    /// The admin API: ADDR:PORT as `serve --api` takes it, or a URL.
    #[arg(
        long,
        value_name = "ADDR:PORT|URL",
        default_value = "http://127.0.0.1:8053",
        value_parser = gslbd::ctl::api_url
    )]
    api: String,
    /// File holding the bearer token for writes.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

impl ExplainArgs {
    fn action(self) -> gslbd::ctl::Action {
        gslbd::ctl::Action::Explain {
            question: gslbd::api::explain::Question {
                name: self.name,
                client: self.client,
                qtype: Some(self.qtype),
            },
            json: self.json,
        }
    }
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Every pool and member: health per check, override.
    Status {
        /// The API's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// No new answers for ADDRESS (or --site) while another member can take them.
    Drain(MemberArgs),
    /// Undo a drain.
    Undrain(MemberArgs),
    /// Treat ADDRESS (or --site) as up whatever the checks say.
    ForceUp(MemberArgs),
    /// Treat ADDRESS (or --site) as down whatever the checks say.
    ForceDown(MemberArgs),
    /// Remove the override of ADDRESS (or --site).
    Clear(MemberArgs),
    /// Reload the configuration (like SIGHUP); prints the diagnostics if it is refused.
    Reload,
    /// What would CLIENT get for NAME now, and why (every step of the pipeline).
    Explain(ExplainArgs),
}

#[derive(Args)]
struct ExplainArgs {
    /// The name asked, e.g. mail.gslb.example.com.
    name: String,
    /// The client: a resolver's address, or IP/LEN for an EDNS Client Subnet.
    #[arg(long, value_name = "IP[/LEN]")]
    client: String,
    /// A or AAAA (or another type, answered as configured).
    #[arg(long = "type", value_name = "TYPE", default_value = "A")]
    qtype: String,
    /// The API's JSON, for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MemberArgs {
    /// The member's address (in every pool it is in).
    #[arg(required_unless_present = "site", conflicts_with = "site")]
    address: Option<std::net::IpAddr>,
    /// Every member placed in this site instead (in every zone that has it).
    #[arg(long, value_name = "NAME")]
    site: Option<String>,
    /// Why (shown in status and logs).
    #[arg(long)]
    reason: Option<String>,
    /// Ends by itself after this long (e.g. 30m, 2h).
    #[arg(long)]
    expires: Option<String>,
}

#[derive(Args)]
struct Files {
    /// Server settings (default: ./gslbd.yaml if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of zone files (overrides `zones_dir` from the config).
    #[arg(long, value_name = "DIR")]
    zones: Option<PathBuf>,
}

impl Files {
    fn sources(self) -> Sources {
        Sources {
            config: self.config,
            zones_dir: self.zones,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            files,
            listen,
            udp_threads,
            api,
        } => {
            init_logs();
            let opts = daemon::Options {
                sources: files.sources(),
                listen,
                udp_threads,
                api,
            };
            match daemon::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { files } => check(files.sources()),
        Command::Key {
            command: KeyCommand::Generate { zone, algorithm },
        } => keys(|| {
            let name = zone.zone()?;
            let (key, private) =
                gslbd::dnssec::Key::generate(&name, algorithm).map_err(|e| e.to_string())?;
            let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(['-', ':', 'T', 'Z'], "");
            let stem = key
                .write(&zone.keys, &private, &created)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "generated {} key {} for {}: {}.key and .private",
                key.algorithm.mnemonic(),
                key.tag(),
                key.zone,
                stem.display()
            );
            Ok(key.ds_record())
        }),
        Command::Ds { zone } => keys(|| {
            let name = zone.zone()?;
            let all = gslbd::dnssec::Key::load_dir(&zone.keys, &name).map_err(|e| e.to_string())?;
            Ok(all
                .iter()
                .map(gslbd::dnssec::Key::ds_record)
                .collect::<Vec<_>>()
                .join("\n"))
        }),
        Command::Explain { conn, args } => ctl(conn, args.action()),
        Command::Ctl { conn, command } => {
            use gslbd::ctl::Action;
            use gslbd::health::overrides::OverrideTarget;
            let member = |action, a: MemberArgs| Action::Member {
                action,
                target: match (a.address, a.site) {
                    (Some(address), _) => OverrideTarget::Member(address),
                    (None, site) => OverrideTarget::Site(site.unwrap_or_default()),
                },
                reason: a.reason,
                expires: a.expires,
            };
            let action = match command {
                CtlCommand::Status { json } => Action::Status { json },
                CtlCommand::Drain(a) => member("drain", a),
                CtlCommand::Undrain(a) => member("undrain", a),
                CtlCommand::ForceUp(a) => member("force-up", a),
                CtlCommand::ForceDown(a) => member("force-down", a),
                CtlCommand::Clear(a) => member("clear", a),
                CtlCommand::Reload => Action::Reload,
                CtlCommand::Explain(a) => a.action(),
            };
            ctl(conn, action)
        }
    }
}

/// A key command: its output on stdout, or its error on stderr and exit 1.
fn keys(run: impl FnOnce() -> Result<String, String>) -> ExitCode {
    match run() {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gslbd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(conn: Conn, action: gslbd::ctl::Action) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match gslbd::ctl::run(&conn.api, conn.token_file.as_deref(), action) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gslbd ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(sources: Sources) -> ExitCode {
    match config::load(&sources) {
        Ok(l) => {
            eprint!("{}", l.warnings);
            let zones = &l.config.zones;
            let records: usize = zones
                .iter()
                .flat_map(|z| &z.rrsets)
                .map(|s| s.rdata.len())
                .sum();
            println!(
                "ok: {} zone(s), {} static record(s), {} warning(s)",
                zones.len(),
                records,
                l.warnings.items.len()
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprint!("{diags}");
            eprintln!("{} error(s)", diags.error_count());
            ExitCode::FAILURE
        }
    }
}

/// Dependencies' log lines that gslbd already reports in its own words, once per health change:
/// rustls-platform-verifier logs every certificate it rejects at ERROR, so once per HTTPS probe
/// (its only other lines, about system CA certificates it cannot parse, go with them).
/// `GSLBD_LOG` comes after these and can turn them back on (`rustls_platform_verifier=debug`).
/// The gRPC stack under the etcd client (h2, tonic, tower, hyper) logs every frame at debug.
const QUIET_DEPENDENCIES: &str =
    "rustls_platform_verifier=off,h2=info,tonic=info,tower=info,hyper_util=info";

/// Human-readable logs on stderr; `GSLBD_LOG` (e.g. `debug`, `gslbd=trace`) sets the level.
fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let wanted = std::env::var("GSLBD_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(format!("{QUIET_DEPENDENCIES},{wanted}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("{QUIET_DEPENDENCIES},info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
