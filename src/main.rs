fn main() -> std::process::ExitCode {
    emrship::cli::main()
}
