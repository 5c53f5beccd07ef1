//! An example `wasi:cli/command` component, built for wasm32-wasip2 with
//! nothing but Rust's standard library: a pod runs it with
//! `runtimeClassName: wasi`. Its arguments are steps, run in order:
//!
//! - `echo WORD…` prints the words (to the end of the arguments, or up to `;`)
//! - `env NAME…` prints `NAME=value` for each name (`NAME=` when unset)
//! - `cat PATH` prints a file; `ls PATH` lists a directory
//! - `write PATH TEXT` writes a file
//! - `stderr TEXT` prints to stderr
//! - `sleep MILLIS` sleeps; `tick MILLIS COUNT` prints `tick N` every MILLIS
//! - `loop` computes forever; `grow MIB` allocates and touches MIB MiB
//! - `panic` panics; `exit CODE` exits with CODE
//!
//! An error in a step (a missing file, a bad number) ends the program with
//! a failure and the error on stderr. (`wasi:cli/exit` 0.2 carries success
//! or failure only: every failure reaches the host as exit code 1.)

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut steps = args.iter().map(String::as_str).peekable();
    while let Some(step) = steps.next() {
        if step == ";" {
            continue;
        }
        let mut operands = Vec::new();
        while let Some(operand) = steps.next_if(|s| *s != ";") {
            operands.push(operand);
        }
        if let Err(error) = run(step, &operands) {
            eprintln!("toolbox {step}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run(step: &str, operands: &[&str]) -> Result<(), String> {
    let operand = |n: usize| operands.get(n).copied().ok_or_else(|| format!("operand {} is missing", n + 1));
    let number = |n: usize| operand(n)?.parse::<u64>().map_err(|e| format!("operand {}: {e}", n + 1));
    match step {
        "echo" => println!("{}", operands.join(" ")),
        "env" => {
            for name in operands {
                println!("{name}={}", std::env::var(name).unwrap_or_default());
            }
        }
        "cat" => {
            let text =
                std::fs::read_to_string(operand(0)?).map_err(|e| format!("{}: {e}", operand(0).unwrap_or("")))?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
        "ls" => {
            let mut names: Vec<String> = std::fs::read_dir(operand(0)?)
                .map_err(|e| e.to_string())?
                .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            for name in names {
                println!("{name}");
            }
        }
        "write" => std::fs::write(operand(0)?, operands[1..].join(" ")).map_err(|e| e.to_string())?,
        "stderr" => eprintln!("{}", operands.join(" ")),
        "sleep" => std::thread::sleep(Duration::from_millis(number(0)?)),
        "tick" => {
            let (every, count) = (number(0)?, number(1)?);
            for n in 1..=count {
                println!("tick {n}");
                std::io::stdout().flush().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(every));
            }
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "grow" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..number(0)? {
                held.push(vec![1; 1 << 20]);
            }
            println!("grew {} MiB", held.len());
        }
        "panic" => panic!("asked to panic"),
        "exit" => {
            let code = i32::try_from(number(0)?).map_err(|e| e.to_string())?;
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            std::process::exit(code)
        }
        other => return Err(format!("unknown step {other:?}")),
    }
    Ok(())
}
