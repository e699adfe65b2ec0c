/* route_scan.h - the pass-through test of a path as inline assembly (x86-64), included
 * by route.h.
 *
 * Why assembly: the test runs inside every path wrapper (open, stat, access...) before
 * anything else, and a call would cost a frame (the wrapper's arguments live across it)
 * on top of the call. The wrappers are built for every x86-64 CPU, so a function compiled
 * for AVX2 could not be inlined into them; and one asm statement also keeps the compiler
 * from copying the path's register or dropping the NULL test (glibc's prototypes say the
 * path is nonnull; libc answers EFAULT). The scratch registers are r10 and r11, and r9
 * for the first-component compare: none of the path calls passes an argument in them
 * (none has six), so the arguments stay where the caller put them (rax too: %al still
 * says what a variadic caller of open or openat said).
 *
 * What it looks for: a NUL, or a pair of dots, whichever comes first (a pair is found by
 * comparing the string at p and at p + 1, so no carry between blocks). Reads are
 * unaligned, and a step runs only while its last byte stays in p's page; bytes read after
 * the NUL are in a page the string's end is in, and are ignored. Like glibc's own string
 * functions this reads past the NUL; AddressSanitizer does not see assembly.
 *
 * - AVX2 + BMI2 CPUs, an absolute path: its second byte is looked up in route_tab.cls
 *   (below), then two 32-byte steps at p and p + 32 cover paths up to 63 bytes with no
 *   cursor; longer ones go on in the loop (ROUTE_AVX2_LOOP). In the last 64 bytes of a
 *   page, one step at p if its reach fits and one ending at the page end
 *   (ROUTE_AVX2_PAGE_TAIL), else aligned blocks to the page end (each compared at its
 *   start and one byte before; the bits before the cursor shifted out with shrx). A path
 *   whose second byte is a mount's first letter has its first component compared with
 *   the mounts' first components, 32 bytes at once (ROUTE_AVX2_LEAD), before or along
 *   the scan: "/sys" beside a mount at /s3 stays on the fast path.
 * - Other x86-64 CPUs: with SSE4.2, pcmpistrm finds ".." or the NUL in 16 bytes with two
 *   instructions (ROUTE_SSE42_LOOP); without, 16-byte SSE2 steps of ten
 *   (ROUTE_SSE2_LOOP); four to a page check, one at a time in the last 64 bytes of a
 *   page. With SSE4.2 the first component of a path whose second byte is a mount's first
 *   letter is compared 16 bytes at once (ROUTE_SSE42_LEAD). A path whose NUL lies past
 *   the last step that fits (so within the page's last 16 or 32 bytes), or, without
 *   SSE4.2, whose second byte is a mount's first letter, takes the routed path
 *   (route_has_dotdot's aligned blocks, route_first_maybe).
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
/* A mount's first component as the first component of an absolute path: pat is '/', the
 * component, '/' and zeros, care 0xff over those bytes; pat[31] != 0 when the next entry
 * is another component with the same first letter (label 21), so a component has at
 * most 29 bytes here (a longer one sends its letter to the routed path). */
struct __attribute__((aligned(32))) route_lead_ent {
    unsigned char pat[32];
    unsigned char care[32];
};
/* By the second byte of an absolute path: cls says which way (ROUTE_SCAN_FIRST), and for
 * a mount's first letter on AVX2 or SSE4.2 CPUs lead points at its entries. The asm
 * addresses lead as cls + 256. */
struct route_tab {
    unsigned char cls[256];
    const struct route_lead_ent *lead[256];
};
enum {
    ROUTE_CLS_SSE = 0,
    ROUTE_CLS_AVX2 = 1,
    ROUTE_CLS_LEAD1 = 2,
    ROUTE_CLS_ROUTED = 0x80,
    ROUTE_CLS_LEADN = 0x81,
    ROUTE_CLS_LEAD_SSE42 = 0x82
};
extern struct route_tab route_tab ROUTE_HIDDEN;
extern const char route_dot ROUTE_HIDDEN;
extern const unsigned char route_dots16[16] ROUTE_HIDDEN; /* 16-byte aligned */
extern unsigned char route_sse42 ROUTE_HIDDEN;                /* the SSE4.2 scan, not SSE2 */
extern const unsigned char route_dotdot16[16] ROUTE_HIDDEN;   /* "..", 16-byte aligned */

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

/* After one step at p, p in the last 64 bytes of its page: the bytes from p + 32 to the
 * page end are fewer than 32, so one step whose reach ends with the page covers them.
 * r10 = p | 4095 (the page's last byte); the step starts at r10 - 31 and marks a NUL, or
 * the second dot of a pair (its first may be the byte before). Its bytes before p + 32
 * need no mask: the step at p saw no NUL there and no pair starting at p ... p + 31. No
 * hit: the string goes on in the next page (a '.' last may pair with its first byte).
 * Labels 16. */
#define ROUTE_AVX2_PAGE_TAIL \
    "or $4095, %%r10\n\t" \
    "vpcmpeqb -32(%%r10), %%ymm1, %%ymm2\n\t" \
    "vpcmpeqb -31(%%r10), %%ymm1, %%ymm3\n\t" \
    "vpand %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpcmpeqb -31(%%r10), %%ymm0, %%ymm3\n\t" \
    "vpor %%ymm3, %%ymm2, %%ymm2\n\t" \
    "vpmovmskb %%ymm2, %%r11d\n\t" \
    "test %%r11d, %%r11d\n\t" \
    "jnz 16f\n\t" \
    "cmpb $46, (%%r10)\n\t" \
    "lea 1(%%r10), %%r10\n\t" \
    "jne 1b\n\t" \
    "vzeroupper\n\t" \
    "jmp %l[route_maybe]\n" \
    "16:\n\t" \
    ROUTE_AVX2_HIT("%%r10", "-31")

/* The second byte of an absolute path is a mount's first letter (AVX2 CPUs): compare its
 * first component with the mounts' (route_tab.lead[second byte]: the 32 bytes '/',
 * component, '/' and a mask of those bytes, route.c). A match is a byte equal to the
 * pattern's or, at the separator, a NUL: the NULs come from the scan's first step (ymm3),
 * so the bytes after a NUL before it could match as well, which only sends a path to the
 * routed path that did not need to go. No match: on with the scan. Near a page end, or
 * 0x81 (several first components with that letter, each compared in turn: label 21),
 * before the scan. Labels 14, 15, 17, 19-21. */
#define ROUTE_AVX2_LEAD \
    "14:\n\t" \
    "mov 256(%%r10,%%r11,8), %%r9\n\t" \
    ROUTE_PAGE_CHECK("%k[p]", "%l[route_maybe]") \
    "vpbroadcastb route_dot(%%rip), %%ymm1\n\t" \
    "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
    "vmovdqa (%%r9), %%ymm4\n\t" \
    "vpcmpeqb (%[p]), %%ymm4, %%ymm4\n\t" \
    ROUTE_AVX2_STEP("%[p]", "0") \
    "vpor %%ymm3, %%ymm4, %%ymm4\n\t" \
    "vptest 32(%%r9), %%ymm4\n\t" \
    "jc 17f\n\t" \
    "test %%r11d, %%r11d\n\t" \
    "jz 10b\n\t" \
    ROUTE_AVX2_HIT("%[p]", "0") \
    "17:\n\t" \
    "vzeroupper\n\t" \
    "jmp %l[route_maybe]\n" \
    "19:\n\t" \
    "cmpb $0x81, (%%r10,%%r11)\n\t" \
    "jb %l[route_maybe]\n\t" \
    "ja 29f\n\t" \
    "mov 256(%%r10,%%r11,8), %%r9\n\t" \
    ROUTE_PAGE_CHECK("%k[p]", "%l[route_maybe]") \
    "vpbroadcastb route_dot(%%rip), %%ymm1\n\t" \
    "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
    "vpcmpeqb (%[p]), %%ymm0, %%ymm3\n" \
    "21:\n\t" \
    "vmovdqa (%%r9), %%ymm4\n\t" \
    "vpcmpeqb (%[p]), %%ymm4, %%ymm4\n\t" \
    "vpor %%ymm3, %%ymm4, %%ymm4\n\t" \
    "vptest 32(%%r9), %%ymm4\n\t" \
    "jc 17b\n\t" \
    "add $64, %%r9\n\t" \
    "cmpb $0, -33(%%r9)\n\t" /* pattern byte 31: another entry follows */ \
    "jne 21b\n\t" \
    "jmp 22b\n" /* the scan, past its page check (done above) */ \
    ROUTE_SSE42_LEAD

/* The same on CPUs with SSE4.2 but not AVX2 (0x82), 16 bytes: a longer pattern is
 * compared in part, which only sends more paths to the routed path. Then the SSE4.2
 * scan, past its page check. Labels 29-30. */
#define ROUTE_SSE42_LEAD \
    "29:\n\t" \
    "mov 256(%%r10,%%r11,8), %%r9\n\t" \
    ROUTE_PAGE_CHECK("%k[p]", "%l[route_maybe]") \
    "movdqu (%[p]), %%xmm2\n\t" \
    "pxor %%xmm3, %%xmm3\n\t" \
    "pcmpeqb %%xmm2, %%xmm3\n" \
    "30:\n\t" \
    "movdqa %%xmm2, %%xmm4\n\t" \
    "pcmpeqb (%%r9), %%xmm4\n\t" \
    "por %%xmm3, %%xmm4\n\t" \
    "ptest 32(%%r9), %%xmm4\n\t" \
    "jc %l[route_maybe]\n\t" \
    "add $64, %%r9\n\t" \
    "cmpb $0, -33(%%r9)\n\t" \
    "jne 30b\n\t" \
    "movdqa route_dotdot16(%%rip), %%xmm1\n\t" \
    "mov %[p], %%r10\n\t" \
    "jmp 32b\n"

/* CPUs with SSE4.2 but not AVX2: pcmpistrm looks for the string ".." in 16 bytes at
 * r10+off, up to their NUL (equal-ordered, implicit lengths): CF says a match (its bit
 * mask in xmm0), ZF a NUL. A match is also reported for a '.' last in the 16 bytes (the
 * needle's rest beyond them is not compared): then the byte after decides. Two
 * instructions per 16 bytes. In a page's last 64 bytes, 16 at a time while they fit;
 * a string whose NUL lies in its last 16 bytes takes the routed path. Labels 23-28, 32. */
#define ROUTE_SSE42_BLOCK(off, out) \
    "pcmpistrm $0x0c, " off "(%%r10), %%xmm1\n\t" \
    "jbe " out "\n\t"

#define ROUTE_SSE42_OUT(label, off) \
    label ":\n\t" \
    "jnc %l[route_clean]\n\t" /* no match, so a NUL */ \
    "lea " off "(%%r10), %%r10\n\t" \
    "jmp 24f\n"

#define ROUTE_SSE42_LOOP \
    "movdqa route_dotdot16(%%rip), %%xmm1\n" \
    "23:\n\t" \
    ROUTE_PAGE_CHECK("%%r10d", "28f") \
    "32:\n\t" \
    ROUTE_SSE42_BLOCK("0", "24f") \
    ROUTE_SSE42_BLOCK("16", "25f") \
    ROUTE_SSE42_BLOCK("32", "26f") \
    ROUTE_SSE42_BLOCK("48", "27f") \
    "add $64, %%r10\n\t" \
    "jmp 23b\n" \
    ROUTE_SSE42_OUT("25", "16") \
    ROUTE_SSE42_OUT("26", "32") \
    ROUTE_SSE42_OUT("27", "48") \
    "28:\n\t" \
    "imul $0x100000, %%r10d, %%r11d\n\t" \
    "add $0x1000000, %%r11d\n\t" \
    "jc %l[route_maybe]\n\t" \
    ROUTE_SSE42_BLOCK("0", "24f") \
    "lea 16(%%r10), %%r10\n\t" \
    "jmp 28b\n" \
    "24:\n\t" /* the block at r10: CF a match, else a NUL */ \
    "jnc %l[route_clean]\n\t" \
    "movd %%xmm0, %%r11d\n\t" \
    "test $0x7fff, %%r11d\n\t" /* a whole pair before the NUL */ \
    "jnz %l[route_maybe]\n\t" \
    "cmpb $46, 16(%%r10)\n\t" /* a '.' last: is the next byte one? */ \
    "je %l[route_maybe]\n\t" \
    "lea 16(%%r10), %%r10\n\t" \
    "jmp 23b\n"

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

#define ROUTE_SCAN_CLOBBERS "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "cc", "memory"

/* The whole test of an absolute path, and the NULL test; falls through (to C) for a
 * relative path. Jumps to the caller's C labels route_clean (foreign, no "..") or
 * route_maybe (the routed path decides). route_tab.cls[second byte] (one compare, whose
 * flags serve three branches): 1 AVX2 and no mount starts so; 2 AVX2 and one first
 * component does (route_tab.lead[]: compared at label 14, then the scan); 0x81 AVX2 and
 * several do (label 19); 0x82 SSE4.2, not AVX2, and a mount starts so (label 29); 0 not
 * AVX2 and no mount starts so (the SSE4.2 or SSE2 scan, label 0); 0x80 the routed path
 * ('/', '.', NUL; on CPUs without SSE4.2 a mount's first letter too). */
#define ROUTE_SCAN_FIRST(p) \
    __asm__ goto("test %[p], %[p]\n\t" \
                 "jz %l[route_maybe]\n\t" \
                 "cmpb $47, (%[p])\n\t" \
                 "jne 9f\n\t" \
                 "movzbl 1(%[p]), %%r11d\n\t" \
                 "lea route_tab(%%rip), %%r10\n\t" \
                 "cmpb $1, (%%r10,%%r11)\n\t" \
                 "jne 0f\n\t" \
                 "vpbroadcastb route_dot(%%rip), %%ymm1\n\t" \
                 "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
                 ROUTE_PAGE_CHECK("%k[p]", "12f") \
                 "22:\n\t" \
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
                 ROUTE_AVX2_PAGE_TAIL \
                 "0:\n\t" \
                 "jg 14f\n\t" \
                 "ja 19f\n\t" \
                 "mov %[p], %%r10\n\t" \
                 "cmpb $0, route_sse42(%%rip)\n\t" \
                 "je 20f\n\t" \
                 ROUTE_SSE42_LOOP \
                 "20:\n\t" \
                 ROUTE_SSE2_LOOP \
                 ROUTE_AVX2_LEAD \
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
