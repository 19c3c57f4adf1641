use clap::Parser;
use saha_eval::{mmeb, sugarcrepe, Cli, Command, STAGE};

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Mmeb(args) => {
            let s = mmeb::run(args)?;
            if !args.output.quiet {
                print!("{}", s.report);
            }
            for w in &s.warnings {
                eprintln!("{STAGE}: note: {w}");
            }
            saha_common::stage::note_renormalised(STAGE, s.renormalised);
            let overall = s.aggregates.last().map(|a| 100.0 * a.p_at_1).unwrap_or(0.0);
            eprintln!(
                "{STAGE}: {} queries in {} subsets, overall P@1 {overall:.2} (model `{}`) -> {} and {}",
                s.queries,
                s.rows.len(),
                s.model,
                args.out.display(),
                s.report_path.display()
            );
        }
        Command::SugarcrepeItems(args) => {
            let s = sugarcrepe::items(args)?;
            let per: Vec<String> = s.subsets.iter().map(|(n, c)| format!("{n} {c}")).collect();
            eprintln!(
                "{STAGE}: {} examples ({}), {} items -> {} and {}",
                s.examples,
                per.join(", "),
                s.items,
                s.items_path.display(),
                s.sets_path.display()
            );
        }
        Command::Sugarcrepe(args) => {
            let s = sugarcrepe::score(args)?;
            if !args.output.quiet {
                print!("{}", s.report);
            }
            saha_common::stage::note_renormalised(STAGE, s.renormalised);
            eprintln!(
                "{STAGE}: {} subsets scored (model `{}`) -> {} and {}",
                s.rows.len(),
                s.model,
                args.out.display(),
                s.report_path.display()
            );
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    saha_common::stage::exit_on_error(STAGE, run(&cli));
}
