//! Small job binaries for the deploy tests: C programs compiled with Zig (`python -m ziglang cc`
//! from the project's test environment) for the targets that matter: x86_64 and aarch64 against
//! glibc 2.26 (what emrship builds for), and x86_64 needing glibc 2.38 (too new for any EMR
//! release).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct TestBinaries {
    pub x86_64_glibc_2_26: PathBuf,
    pub aarch64_glibc_2_26: PathBuf,
    pub x86_64_glibc_2_38: PathBuf,
}

/// Compiles the test binaries once per test run (cached under cargo's test temp folder).
pub fn binaries() -> &'static TestBinaries {
    static BINARIES: OnceLock<TestBinaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-test-binaries");
        std::fs::create_dir_all(&dir).unwrap();
        let hello = dir.join("hello.c");
        std::fs::write(
            &hello,
            "#include <stdio.h>\nint main(void) { puts(\"emrship-job test\"); return 0; }\n",
        )
        .unwrap();
        // strlcpy arrived in glibc 2.38: linking it makes the binary need GLIBC_2.38.
        let newer = dir.join("needs_2_38.c");
        std::fs::write(
            &newer,
            "#include <stdio.h>\n#include <string.h>\nint main(int argc, char **argv) {\n  char b[8]; strlcpy(b, argv[0], sizeof b); puts(b); return argc > 5;\n}\n",
        )
        .unwrap();
        let python = super::moto::test_python();
        let compile = |source: &Path, target: &str, name: &str| {
            let out = dir.join(name);
            if !out.is_file() {
                let status = Command::new(&python)
                    .args(["-m", "ziglang", "cc", "-O1", "-s", "-target", target, "-o"])
                    .arg(&out)
                    .arg(source)
                    .status()
                    .expect("run python -m ziglang cc");
                assert!(status.success(), "zig cc for {target} failed");
            }
            out
        };
        TestBinaries {
            x86_64_glibc_2_26: compile(&hello, "x86_64-linux-gnu.2.26", "x86_64-2.26"),
            aarch64_glibc_2_26: compile(&hello, "aarch64-linux-gnu.2.26", "aarch64-2.26"),
            x86_64_glibc_2_38: compile(&newer, "x86_64-linux-gnu.2.38", "x86_64-2.38"),
        }
    })
}
