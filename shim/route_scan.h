/* route_scan.h - the pass-through test of a path as inline assembly (x86-64), included
 * by route.h.
 *
 * Why assembly: the test runs inside every path wrapper (open, stat, access...) before
 * anything else, and a call would cost a frame (the wrapper's arguments live across it)
 * on top of the call. The wrappers are built for every x86-64 CPU, so a function compiled
 * for AVX2 could not be inlined into them; and one asm statement also keeps the compiler
 * from copying the path's register or dropping the NULL test (glibc's prototypes say the
 * path is nonnull; libc answers EFAULT). The scratch registers are r10 and r11, which no
 * call passes an argument in, so the arguments stay where the caller put them (rax too:
 * %al still says what a variadic caller of open or openat said).
 *
 * What it looks for: a NUL, or a pair of dots, whichever comes first (a pair is found by
 * comparing the string at p and at p + 1, so no carry between blocks). Reads are
 * unaligned, and a step runs only while its last byte stays in p's page; bytes read after
 * the NUL are in a page the string's end is in, and are ignored. Like glibc's own string
 * functions this reads past the NUL; AddressSanitizer does not see assembly.
 *
 * - AVX2 + BMI2 CPUs, an absolute path: its second byte is looked up in route_abs_fast
 *   (all zero on other CPUs and before route_init), then two 32-byte steps at p and
 *   p + 32 cover paths up to 63 bytes with no cursor; longer ones go on in the loop
 *   (ROUTE_AVX2_LOOP). In the last 64 bytes of a page, one step at p if its reach fits,
 *   then aligned blocks to the page end (each compared at its start and one byte
 *   before; the bits before the cursor shifted out with shrx).
 * - Other x86-64 CPUs (SSE2): route_lead, then 16-byte steps, four to a page check, one
 *   to a check in the last 64 bytes of a page. A path whose NUL lies past the last step
 *   that fits (so within the page's last 32 bytes) takes the routed path
 *   (route_has_dotdot's aligned blocks).
 * - A relative path falls through to C (route_foreign_fast), which tests the directory
 *   and the working directory and then runs ROUTE_SCAN_ANY.
 *
 * The page check is three instructions: imul by 2^20 keeps the offset in the page in the
 * top 12 bits, and adding 64 << 20 carries out if cursor + 64, the last byte a round of
 * steps may read, is past the page. */
#ifndef S3SHIM_ROUTE_SCAN_H
#define S3SHIM_ROUTE_SCAN_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(S3SHIM_NO_ASM)
#define ROUTE_VECTOR_SCAN 1

extern unsigned char route_avx2 ROUTE_HIDDEN;
/* For AVX2 CPUs: 1 where the second byte of an absolute path cannot start a mount
 * prefix (!route_lead); all 0 elsewhere, which sends every absolute path to the SSE2 scan. */
extern unsigned char route_abs_fast[256] ROUTE_HIDDEN;
extern const char route_dot ROUTE_HIDDEN;
extern const unsigned char route_dots16[16] ROUTE_HIDDEN; /* 16-byte aligned */

/* Is cursor + 64 (reg32: the cursor's 32-bit register) past the cursor's page? */
#define ROUTE_PAGE_CHECK(reg32, away) \
    "imul $0x100000, " reg32 ", %%r11d\n\t" \
    "add $0x4000000, %%r11d\n\t" \
    "jc " away "\n\t"

/* 32 bytes at base+off: r11d gets a bit per NUL or first dot of a pair. */
#define ROUTE_AVX2_STEP(base, off) \
    "vpcmpeqb " off "(" base "), %%ymm1, %%ymm2\n\t" \
    "vpcmpeqb " off "+1(" base "), %%ymm1, %%ymm3\n\t" \
    "vpand %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpcmpeqb " off "(" base "), %%ymm0, %%ymm3\n\t" \
    "vpor %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpmovmskb %%ymm2, %%r11d\n\t"

/* The first hit in the block at base+off decides: NUL, clean; a pair of dots, maybe. */
#define ROUTE_AVX2_HIT(base, off) \
    "bsf %%r11d, %%r11d\n\t" \
    "vzeroupper\n\t" \
    "cmpb $0, " off "(" base ",%%r11)\n\t" \
    "je %l[route_clean]\n\t" \
    "jmp %l[route_maybe]\n"

/* The AVX2 loop from the cursor r10 (ymm0 zero, ymm1 dots). Labels 1-3. */
#define ROUTE_AVX2_LOOP \
    "1:\n\t" \
    ROUTE_PAGE_CHECK("%%r10d", "3f") \
    ROUTE_AVX2_STEP("%%r10", "0") \
    "test %%r11d, %%r11d\n\t" \
    "jnz 2f\n\t" \
    "add $32, %%r10\n\t" \
    ROUTE_AVX2_STEP("%%r10", "0") \
    "test %%r11d, %%r11d\n\t" \
    "jnz 2f\n\t" \
    "add $32, %%r10\n\t" \
    "jmp 1b\n" \
    "2:\n\t" \
    ROUTE_AVX2_HIT("%%r10", "0") \
    /* The last 64 bytes of a page: aligned blocks, which never cross it. */ \
    "3:\n\t" \
    "mov %%r10, %%r11\n\t" \
    "and $-32, %%r11\n\t" \
    "vpcmpeqb -1(%%r11), %%ymm1, %%ymm2\n\t" \
    "vpcmpeqb (%%r11), %%ymm1, %%ymm3\n\t" \
    "vpand %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpcmpeqb (%%r11), %%ymm0, %%ymm3\n\t" \
    "vpor %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpmovmskb %%ymm2, %%r11d\n\t" \
    "shrx %%r10d, %%r11d, %%r11d\n\t" /* the count is taken modulo 32 */ \
    "test %%r11d, %%r11d\n\t" \
    "jnz 2b\n\t" \
    "and $-32, %%r10\n\t" \
    "add $32, %%r10\n\t" \
    "test $4095, %%r10d\n\t" \
    "jnz 3b\n\t" \
    "cmpb $46, -1(%%r10)\n\t" /* a '.' that may pair with the next page's */ \
    "jne 1b\n\t" \
    "vzeroupper\n\t" \
    "jmp %l[route_maybe]\n"

/* 16 bytes at r10+off with SSE2 (xmm0 zero, xmm1 dots): the dots of a pair are the bytes
 * at p that equal '.' once masked by "the byte at p + 1 is '.'". r11d as above. */
#define ROUTE_SSE2_STEP(off) \
    "movdqu " off "(%%r10), %%xmm2\n\t" \
    "movdqu " off "+1(%%r10), %%xmm3\n\t" \
    "pcmpeqb %%xmm1, %%xmm3\n\t" \
    "pand %%xmm2, %%xmm3\n\t" \
    "pcmpeqb %%xmm1, %%xmm3\n\t" \
    "pcmpeqb %%xmm0, %%xmm2\n\t" \
    "por %%xmm3, %%xmm2\n\t" \
    "pmovmskb %%xmm2, %%r11d\n\t" \
    "test %%r11d, %%r11d\n\t"

#define ROUTE_SSE2_HIT(off) \
    "bsf %%r11d, %%r11d\n\t" \
    "cmpb $0, " off "(%%r10,%%r11)\n\t" \
    "je %l[route_clean]\n\t" \
    "jmp %l[route_maybe]\n"

/* The SSE2 loop from the cursor r10. Labels 4-8 and 13. Near a page end it goes one
 * step at a time while the step's reach (16 bytes + 1) stays in the page; a string whose
 * NUL lies past the last step that fits takes the routed path. */
#define ROUTE_SSE2_LOOP \
    "movdqa route_dots16(%%rip), %%xmm1\n\t" \
    "pxor %%xmm0, %%xmm0\n" \
    "4:\n\t" \
    ROUTE_PAGE_CHECK("%%r10d", "13f") \
    ROUTE_SSE2_STEP("0") \
    "jnz 5f\n\t" \
    ROUTE_SSE2_STEP("16") \
    "jnz 6f\n\t" \
    ROUTE_SSE2_STEP("32") \
    "jnz 7f\n\t" \
    ROUTE_SSE2_STEP("48") \
    "jnz 8f\n\t" \
    "add $64, %%r10\n\t" \
    "jmp 4b\n" \
    "5:\n\t" ROUTE_SSE2_HIT("0") \
    "6:\n\t" ROUTE_SSE2_HIT("16") \
    "7:\n\t" ROUTE_SSE2_HIT("32") \
    "8:\n\t" ROUTE_SSE2_HIT("48") \
    "13:\n\t" \
    "imul $0x100000, %%r10d, %%r11d\n\t" \
    "add $0x1000000, %%r11d\n\t" \
    "jc %l[route_maybe]\n\t" \
    ROUTE_SSE2_STEP("0") \
    "jnz 5b\n\t" \
    "add $16, %%r10\n\t" \
    "jmp 4b\n"

#define ROUTE_SCAN_CLOBBERS "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "cc", "memory"

/* The whole test of an absolute path, and the NULL test; falls through (to C) for a
 * relative path. Jumps to the caller's C labels route_clean (foreign, no "..") or
 * route_maybe (the routed path decides). */
#define ROUTE_SCAN_FIRST(p) \
    __asm__ goto("test %[p], %[p]\n\t" \
                 "jz %l[route_maybe]\n\t" \
                 "cmpb $47, (%[p])\n\t" \
                 "jne 9f\n\t" \
                 "movzbl 1(%[p]), %%r11d\n\t" \
                 "lea route_abs_fast(%%rip), %%r10\n\t" \
                 "cmpb $0, (%%r10,%%r11)\n\t" \
                 "je 0f\n\t" \
                 "vpbroadcastb route_dot(%%rip), %%ymm1\n\t" \
                 "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
                 ROUTE_PAGE_CHECK("%k[p]", "12f") \
                 ROUTE_AVX2_STEP("%[p]", "0") \
                 "test %%r11d, %%r11d\n\t" \
                 "jz 10f\n\t" \
                 ROUTE_AVX2_HIT("%[p]", "0") \
                 "10:\n\t" \
                 ROUTE_AVX2_STEP("%[p]", "32") \
                 "test %%r11d, %%r11d\n\t" \
                 "jz 11f\n\t" \
                 ROUTE_AVX2_HIT("%[p]", "32") \
                 "11:\n\t" \
                 "lea 64(%[p]), %%r10\n\t" \
                 "jmp 1f\n" \
                 ROUTE_AVX2_LOOP \
                 "12:\n\t" /* p in the last 64 bytes of its page: one step if it fits */ \
                 "mov %[p], %%r10\n\t" \
                 "imul $0x100000, %k[p], %%r11d\n\t" \
                 "add $0x2000000, %%r11d\n\t" \
                 "jc 3b\n\t" \
                 ROUTE_AVX2_STEP("%[p]", "0") \
                 "test %%r11d, %%r11d\n\t" \
                 "jnz 2b\n\t" \
                 "add $32, %%r10\n\t" \
                 "jmp 3b\n" \
                 /* not for the AVX2 fast path: a mount's first letter, or SSE2 */ \
                 "0:\n\t" \
                 "lea route_lead(%%rip), %%r10\n\t" \
                 "cmpb $0, (%%r10,%%r11)\n\t" \
                 "jne %l[route_maybe]\n\t" \
                 "mov %[p], %%r10\n\t" \
                 ROUTE_SSE2_LOOP \
                 "9:" \
                 : \
                 : [p] "r"(p) \
                 : ROUTE_SCAN_CLOBBERS \
                 : route_clean, route_maybe)

/* The scan alone, from p, for a relative path: AVX2 or SSE2 as the CPU allows. */
#define ROUTE_SCAN_ANY(p) \
    __asm__ goto("mov %[p], %%r10\n\t" \
                 "cmpb $0, route_avx2(%%rip)\n\t" \
                 "je 0f\n\t" \
                 "vpbroadcastb route_dot(%%rip), %%ymm1\n\t" \
                 "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
                 ROUTE_AVX2_LOOP \
                 "0:\n\t" \
                 ROUTE_SSE2_LOOP \
                 : \
                 : [p] "r"(p) \
                 : ROUTE_SCAN_CLOBBERS \
                 : route_clean, route_maybe)
#endif

#endif
