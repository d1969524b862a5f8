//! The fentry probe: attached only when the kernel has the function and
//! allows trampolines; anything else is a reason to fall back, not an error.

use aya::programs::FEntry;
use aya::Ebpf;

use super::object::Kernel;
use super::{typed_program, unavailable, Unavailable};

/// The program in the object; it can be pointed at any kernel function.
const PROGRAM: &str = "klp_init_transition";

/// An attached fentry program; detached on drop.
pub struct FentryProbe {
    _ebpf: Ebpf,
    pub function: String,
}

impl FentryProbe {
    /// Attaches the probe to `function`, after looking it up in BTF.
    pub fn attach(function: &str) -> Result<FentryProbe, Unavailable> {
        let mut kernel = Kernel::read(&[function])?;
        if !kernel.ours.has_function(function) {
            return Err(Unavailable::MissingHook(function.into()));
        }
        let mut ebpf = kernel.load()?;
        let program: &mut FEntry = typed_program(&mut ebpf, PROGRAM, "fentry")?;
        program
            .load(function, kernel.aya()?)
            .map_err(|e| unavailable("fentry", &e))?;
        program.attach().map_err(|e| unavailable("fentry", &e))?;
        Ok(FentryProbe {
            _ebpf: ebpf,
            function: function.into(),
        })
    }
}
