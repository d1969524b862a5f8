//! kgr's eBPF programs: one file per hook, each entry point one line calling
//! its `try_*` function. Built for `bpfel-unknown-none` by kgr/build.rs; on
//! the host the crate only type-checks (clippy).

#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod fentry_probe;
mod offsets;
mod stack_check;
mod syscalls;
mod task_iter;
mod transition;

/// GPL: the task iterator and `bpf_probe_read_kernel` need a GPL-compatible
/// license.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
