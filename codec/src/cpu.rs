//! Run-time CPU-feature detection, in one place: the rotation ([`crate::hadamard`]), the
//! scalar pipeline and the row-parallel kernels ([`crate::rows`]) all ask here which
//! instructions they may use. The build stays generic (no `-C target-cpu`), so one binary
//! runs everywhere and picks its fastest path on the machine it lands on.

/// Whether the AVX2 + FMA code paths may run on this CPU (always false off x86-64).
///
/// ```
/// let _fast = kakeya_lattice::cpu::has_avx2_fma();
/// ```
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512F (+ AVX2, FMA) code paths may run on this CPU.
///
/// ```
/// if kakeya_lattice::cpu::has_avx512() {
///     assert!(kakeya_lattice::cpu::has_avx2_fma());
/// }
/// ```
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && has_avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Which row-parallel kernel runs (see [`crate::rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// 16 rows per step, AVX-512F + FMA.
    Avx512,
    /// 8 rows per step, AVX2 + FMA.
    Avx2,
    /// 8 rows per step, portable code (NEON + FMA on aarch64; elsewhere whatever the build
    /// targets: without hardware FMA `mul_add` is a slow library call).
    Portable,
}

impl Kernel {
    /// Short lowercase name used in reports (`avx512`, `avx2`, `portable`).
    ///
    /// ```
    /// assert_eq!(kakeya_lattice::Kernel::Avx2.name(), "avx2");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The fastest kernel this CPU supports (checked at run time).
///
/// ```
/// let k = kakeya_lattice::cpu::kernel();
/// assert!(kakeya_lattice::cpu::supported(k));
/// ```
pub fn kernel() -> Kernel {
    if has_avx512() {
        Kernel::Avx512
    } else if has_avx2_fma() {
        Kernel::Avx2
    } else {
        Kernel::Portable
    }
}

/// Every kernel this CPU can run (for tests and benchmarks), slowest first.
///
/// ```
/// let ks = kakeya_lattice::cpu::available_kernels();
/// assert_eq!(ks[0], kakeya_lattice::Kernel::Portable);
/// ```
pub fn available_kernels() -> Vec<Kernel> {
    [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
        .into_iter()
        .filter(|&k| supported(k))
        .collect()
}

/// Whether this CPU can run `k` (the portable kernel runs everywhere).
///
/// ```
/// assert!(kakeya_lattice::cpu::supported(kakeya_lattice::Kernel::Portable));
/// ```
pub fn supported(k: Kernel) -> bool {
    match k {
        Kernel::Portable => true,
        Kernel::Avx2 => has_avx2_fma(),
        Kernel::Avx512 => has_avx512(),
    }
}
