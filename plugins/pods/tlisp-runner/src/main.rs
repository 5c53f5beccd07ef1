//! The tlisp runner, a `wasi:cli/command` component: a pod with
//! `runtimeClassName: tlisp` and image `tlisp` runs its program here.
//! The first argument is the path of the program file (a ConfigMap
//! volume's key, say), or `-e` followed by the program text. The program
//! has tatara-lisp's standard library, with `print`, `println` and
//! `display` writing to stdout and `(exit CODE)` ending the program with
//! that code (0 success, anything else failure). A syntax or runtime error
//! ends the program with failure and the error on stderr.

use std::io::Write;
use std::process::ExitCode;

use tatara_lisp_eval::{Arity, Interpreter, Value};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (origin, source) = match args.as_slice() {
        [flag, text, ..] if flag == "-e" => ("-e".to_owned(), text.clone()),
        [flag] if flag == "-e" => return fail("-e needs the program text after it"),
        [path, ..] => match std::fs::read_to_string(path) {
            Ok(text) => (path.clone(), text),
            Err(error) => return fail(&format!("reading {path}: {error}")),
        },
        [] => return fail("usage: tlisp PROGRAM-FILE | tlisp -e PROGRAM-TEXT"),
    };
    let forms = match tatara_lisp_eval::read_spanned(&source) {
        Ok(forms) => forms,
        Err(error) => return fail(&format!("{origin}: syntax error: {error}")),
    };
    let mut interpreter: Interpreter<()> = Interpreter::new();
    tatara_lisp_eval::install_full_stdlib_with(&mut interpreter, &mut ());
    interpreter.register_fn("exit", Arity::Range(0, 1), |args: &[Value], _: &mut (), _| {
        let code = match args.first() {
            None => 0,
            Some(Value::Int(code)) => i32::try_from(*code).unwrap_or(1),
            Some(other) => {
                eprintln!("tlisp: exit takes an integer code, not {other}");
                1
            }
        };
        let _ = std::io::stdout().flush();
        std::process::exit(code)
    });
    match interpreter.eval_program(&forms, &mut ()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{origin}: {error}")),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = std::io::stdout().flush();
    eprintln!("tlisp: {message}");
    ExitCode::FAILURE
}
