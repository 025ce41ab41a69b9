//! Writes the CRDs of every metal.ironcore.dev kind as YAML, one file per kind, named like upstream.
//!
//! `cargo run -p metal-api --bin crdgen -- --out config/crd`; without `--out` all documents go to stdout.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Generate the metal.ironcore.dev CustomResourceDefinitions")]
struct Args {
    /// Directory to write `metal.ironcore.dev_<plural>.yaml` files into (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let crds = metal_api::crds::all();
    match args.out {
        None => {
            for crd in &crds {
                print!("{}", metal_api::crds::to_yaml(crd)?);
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(metal_api::crds::file_name(crd));
                std::fs::write(&path, metal_api::crds::to_yaml(crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
