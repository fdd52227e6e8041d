fn main() -> std::process::ExitCode {
    emrship::job::cli::main()
}
