//! The Models view in egui_kittest, against the stand-in Hub: type a repo
//! id, see its files with sizes and quantizations (Q4_K_M ticked), download
//! with progress, pause, resume, cancel, a queue of two repos; the finished
//! GGUF joins the text models and the diffusers folder the Image view's
//! library, without a restart; delete takes a repo out of the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::hub_standin::{StandIn, StandInFile, StandInRepo, gguf_repo};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::diffusion::model_library::ItemKind;
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::hub::config::HubConfig;
use latent_studio::ui::commands::Tab;
use latent_studio::ui::models_panel::RowState;
use latent_studio::worker::downloads::DownloadEnd;

const GGUF: &str = "owner/tiny-GGUF";
const SD: &str = "owner/tiny-sd";

/// A tiny diffusers folder served as a repo (weights in LFS, configs in git).
fn diffusers_repo(dir: &Path) -> StandInRepo {
    write_random_model(dir, &RandomModel::tiny(5)).unwrap();
    let mut files = vec![StandInFile::new("README.md", b"---\nlicense: openrail++\n---\n".to_vec(), false)];
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
            let lfs = name.ends_with(".safetensors");
            files.push(StandInFile::new(&name, std::fs::read(&path).unwrap(), lfs));
        }
    }
    StandInRepo {
        id: SD.into(),
        commit: "5555555555666666666677777777778888888888".into(),
        files,
        gated: false,
        license: "openrail++".into(),
    }
}

fn hub_config(server: &StandIn, cache: &Path) -> HubConfig {
    let vars = [
        ("HF_ENDPOINT", server.endpoint.clone()),
        ("HF_HUB_CACHE", cache.display().to_string()),
        ("HF_HOME", cache.join("home").display().to_string()),
    ];
    HubConfig::from_vars(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into()))
}

/// The studio on its Models view, talking to `server`, caching in `cache`.
fn studio(server: &StandIn, cache: &Path) -> Harness<'static, StudioApp> {
    studio_with(server, cache, Settings { tab: Tab::Models, ..Settings::default() })
}

fn studio_with(server: &StandIn, cache: &Path, settings: Settings) -> Harness<'static, StudioApp> {
    let config = hub_config(server, cache);
    let mut h = Harness::builder().with_size([1400.0, 1000.0]).build_eframe(move |cc| {
        let mut app = StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap();
        app.use_hub(config);
        app
    });
    h.step();
    h
}

fn row_state(app: &StudioApp, repo: &str) -> Option<RowState> {
    app.models_panel.downloads.iter().rev().find(|r| r.plan.repo.as_str() == repo).map(|r| r.state.clone())
}

fn show_files(h: &mut Harness<'_, StudioApp>, repo: &str) {
    h.get_by_label("Any repo id").focus();
    h.step();
    h.state_mut().models_panel.repo_input.clear();
    h.get_by_label("Any repo id").type_text(repo);
    h.step();
    h.get_by_label("Show files").click();
    common::step_until(h, "the file list", |app| {
        app.models_panel.listing.as_ref().is_some_and(|l| l.repo == repo) && app.models_panel.describing.is_none()
    });
}

#[test]
fn browse_download_pause_resume_cancel_and_use() {
    let sd_dir = tempfile::tempdir().unwrap();
    let server = StandIn::start(vec![gguf_repo(GGUF), diffusers_repo(sd_dir.path())]);
    // 40 ms per MiB: slow enough to pause, fast enough for a test.
    server.faults.lock().unwrap().slow_ms = 40;
    let cache = tempfile::tempdir().unwrap();
    let mut h = studio(&server, cache.path());
    // The catalogue is there; a Hub's repo id is typed and its files listed.
    h.get_by_label("SD-Turbo");
    h.get_by_label("SmolLM2 1.7B Instruct");
    show_files(&mut h, GGUF);
    h.get_by_label("Q4_K_M");
    h.get_by_label("Q8_0");
    h.get_by_label("3.1 MB");
    h.get_by_label_contains("licence apache-2.0");
    let chosen: Vec<String> = h.state().models_panel.listing.as_ref().unwrap().chosen.iter().cloned().collect();
    assert_eq!(chosen, ["README.md", "model-Q4_K_M.gguf"], "Q4_K_M and the card are preselected");

    // Tick the Q8_0 file too, download, and pause once bytes flow.
    h.get_by_label("model-Q8_0.gguf").click();
    h.step();
    h.get_by_label("Download 3 files (8.4 MB)").click();
    common::step_until(&mut h, "progress", |app| app.models_panel.downloads.first().is_some_and(|r| r.done > 0));
    h.get_by_label("Pause").click();
    common::step_until(&mut h, "the pause", |app| row_state(app, GGUF) == Some(RowState::Ended(DownloadEnd::Paused)));
    let paused_at = h.state().models_panel.downloads[0].done;
    assert!(paused_at > 0 && paused_at < 8 << 20, "{paused_at}");

    // Queue the diffusers repo behind the resumed one.
    h.get_by_label("Resume").click();
    h.step();
    show_files(&mut h, SD);
    let label = h.state().models_panel.listing.as_ref().unwrap().plan().map(|p| p.files.len()).unwrap();
    h.get_by_label_contains(&format!("Download {label} files")).click();
    h.step();
    assert_eq!(row_state(h.state(), SD), Some(RowState::Queued));
    common::step_until(&mut h, "both downloads", |app| {
        row_state(app, GGUF).is_some_and(|s| matches!(s, RowState::Ended(DownloadEnd::Done(_))))
            && row_state(app, SD).is_some_and(|s| matches!(s, RowState::Ended(DownloadEnd::Done(_))))
    });
    // Resumed, not restarted: no file's bytes were fetched from the start twice.
    let whole: Vec<String> =
        server.requests().into_iter().filter(|r| r.starts_with("GET /cdn/") && !r.contains(" from ")).collect();
    let mut unique = whole.clone();
    unique.dedup();
    assert_eq!(whole, unique, "{:?}", server.requests());

    // Both appear: installed with licence and size, the GGUF among the text models, the folder in the library.
    common::step_until(&mut h, "the installed list", |app| app.models_panel.installed.len() == 2);
    h.get_by_label("apache-2.0");
    h.get_by_label("openrail++");
    let text_id = format!("{GGUF}:model-Q4_K_M.gguf");
    assert!(h.state().models().iter().any(|m| m.id == text_id), "the GGUF is a text model");
    common::step_until(&mut h, "the library", |app| {
        app.library
            .iter()
            .any(|i| i.kind == ItemKind::DiffusersFolder && i.path.starts_with(cache.path()) && i.name == SD)
    });

    // Cancel deletes the partial file; delete takes the repo out of the cache.
    server.faults.lock().unwrap().slow_ms = 200;
    h.get_all_by_label("Delete").next().unwrap().click(); // the first installed repo (owner/tiny-GGUF)
    h.step();
    h.step();
    h.get_by_label("Really delete?").click();
    common::step_until(&mut h, "the delete", |app| app.models_panel.installed.len() == 1);
    show_files(&mut h, GGUF);
    h.get_by_label("Download 2 files (3.1 MB)").click();
    common::step_until(&mut h, "progress", |app| {
        app.models_panel.downloads.last().is_some_and(|r| r.done > 0 && r.state == RowState::Running)
    });
    h.get_by_label("Cancel").click();
    common::step_until(&mut h, "the cancel", |app| {
        app.models_panel.downloads.last().is_some_and(|r| r.state == RowState::Ended(DownloadEnd::Cancelled))
    });
    let blobs = cache.path().join("models--owner--tiny-GGUF/blobs");
    let partial: Vec<_> = std::fs::read_dir(blobs)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "incomplete"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}

#[test]
fn a_gated_repo_needs_the_token_a_missing_one_and_offline_say_so() {
    let mut gated = gguf_repo("owner/gated-GGUF");
    gated.gated = true;
    let server = StandIn::start(vec![gguf_repo(GGUF), gated]);
    let cache = tempfile::tempdir().unwrap();
    let mut h = studio(&server, cache.path());
    show_files(&mut h, "owner/missing");
    h.get_by_label_contains("owner/missing was not found");

    // Gated: listed, but the download needs a token; saved, the resumed pull finishes.
    show_files(&mut h, "owner/gated-GGUF");
    h.get_by_label("Download 2 files (3.1 MB)").click();
    common::step_until(&mut h, "the refusal", |app| {
        matches!(row_state(app, "owner/gated-GGUF"), Some(RowState::Ended(DownloadEnd::Failed(_))))
    });
    assert!(h.get_all_by_label_contains("owner/gated-GGUF is gated").count() >= 1);
    h.get_by_label("no token (public repos only)");
    h.get_by_label("Hub token").focus();
    h.step();
    h.get_by_label("Hub token").type_text(common::hub_standin::GOOD_TOKEN);
    h.step();
    h.get_by_label("Save token").click();
    h.step();
    h.step();
    h.get_by_label("a token is in use");
    let token_file = cache.path().join("home/token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), common::hub_standin::GOOD_TOKEN);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(h.state().models_panel.token_input.is_empty());
    h.get_by_label("Resume").click();
    common::step_until(&mut h, "the gated download", |app| {
        matches!(row_state(app, "owner/gated-GGUF"), Some(RowState::Ended(DownloadEnd::Done(_))))
    });

    let mut offline = hub_config(&server, cache.path());
    offline.offline = true;
    h.state_mut().use_hub(offline);
    h.step();
    h.get_by_label_contains("offline (HF_HUB_OFFLINE)");
    show_files(&mut h, GGUF);
    h.get_by_label_contains("offline (HF_HUB_OFFLINE is set)");
}

#[test]
fn an_unfinished_download_is_offered_again_after_a_restart_and_resumes() {
    let repo = gguf_repo(GGUF);
    let server = StandIn::start(vec![repo.clone()]);
    server.faults.lock().unwrap().slow_ms = 100;
    let cache = tempfile::tempdir().unwrap();
    let mut h = studio(&server, cache.path());
    show_files(&mut h, GGUF);
    h.get_by_label("Download 2 files (3.1 MB)").click();
    common::step_until(&mut h, "progress", |app| app.models_panel.downloads.first().is_some_and(|r| r.done > 0));
    h.get_by_label("Pause").click();
    common::step_until(&mut h, "the pause", |app| row_state(app, GGUF) == Some(RowState::Ended(DownloadEnd::Paused)));
    // What `save` stores when the window closes.
    let unfinished = h.state().models_panel.unfinished();
    assert_eq!(unfinished.len(), 1);
    drop(h);

    server.faults.lock().unwrap().slow_ms = 0;
    server.clear_log();
    let settings = Settings { tab: Tab::Models, unfinished_downloads: unfinished, ..Settings::default() };
    let mut h = studio_with(&server, cache.path(), settings);
    assert_eq!(row_state(h.state(), GGUF), Some(RowState::Ended(DownloadEnd::Paused)));
    h.get_by_label("Resume").click();
    common::step_until(&mut h, "the resumed download", |app| {
        matches!(row_state(app, GGUF), Some(RowState::Ended(DownloadEnd::Done(_))))
    });
    let log = server.requests();
    assert!(log.iter().any(|r| r.starts_with("GET /cdn/") && r.contains(" from ")), "resumed with a Range: {log:?}");
    let file = cache.path().join("models--owner--tiny-GGUF/snapshots").join(&repo.commit).join("model-Q4_K_M.gguf");
    assert_eq!(std::fs::read(file).unwrap(), *repo.files[2].bytes);
    // Listed again, the repo's files say which are already in the cache.
    show_files(&mut h, GGUF);
    assert_eq!(h.get_all_by_label("in cache").count(), 2, "the card and the Q4_K_M file");
}
