//! `cargo run --release -p sim --example eval -- --seed 1 --pair-days 1000 [--sigma 15]
//! [--outliers 0.02] [--cell 0.02] [--threads 2]`

fn main() {
    let mut cfg = sim::EvalConfig::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let num = || {
            val.parse::<f64>()
                .unwrap_or_else(|_| panic!("{}: bad number {val:?}", args[i]))
        };
        match args[i].as_str() {
            "--seed" => cfg.seed = num() as u64,
            "--pair-days" => cfg.pair_days = num() as u64,
            "--sigma" => cfg.sigma_m = num(),
            "--outliers" => cfg.outlier_rate = num(),
            "--cell" => cfg.cell_rate = num(),
            "--threads" => cfg.threads = num() as usize,
            "--interval" => cfg.interval_s = num() as u32,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    print!("{}", sim::run(cfg));
}
