/*
 * q4_fully_connected_s4_armv6m.c - fully connected layer, INT4 packed weights, int8 activations,
 * for ARMv6-M cores (Cortex-M0/M0+). Bit-exact with q4_fully_connected_s4; plain C99 for any core.
 *
 * Each weight is used once, so nothing is unpacked: a packed byte is read as offset binary,
 * c = b ^ 0x88 = u0 + 16 * u1 with u = w + 8 in [0, 15], and with x' = x - z_x
 *     x'0 * u0 + x'1 * u1 = x'0 * c + u1 * (x'1 - 16 * x'0),
 * so two MACs cost two MULS and one shift (u1 = c >> 4). The input is prepared once per call as
 * int16 pairs (x'0, x'1 - 16 * x'0), |x'| <= 255; sum(x' * w) = sum(x' * u) - 8 * sum(x'). Two
 * rows share each input pair. Sums are uint32 (modulo 2^32): exact once the result fits int32, which the
 * generator's accumulator bound guarantees.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_armv6m.h"

/* Scratch: the input pairs, 4 bytes per two inputs. */
int32_t q4_fully_connected_s4_armv6m_get_buffer_size(int32_t input_size)
{
    return 4 * ((input_size + 1) / 2);
}

#if defined(__GNUC__) && defined(__thumb__) && defined(__ARM_ARCH_6M__)
#define Q4_FC_ASM 1
/*
 * The sums of q4_fc_row_pair over the first 4 * n bytes (end = pairs + 8 * n), returned as
 * acc0 | acc1 << 32. A function of its own in assembly: per byte and row LDRB, EORS, LSRS, two
 * MULS and two ADDs into r8/r9, per byte one LDR of the pair (SXTH, ASRS): 17 instructions for
 * 4 MACs, in all eight low registers (saved here, whatever the compiler keeps in r7).
 */
uint64_t q4_fc_pairs4_armv6m(const uint8_t *row0, const uint8_t *row1, const int16_t *pairs,
                             const int16_t *end);
#define Q4_FC_BYTE(i)                                                                 \
    "  ldr r5, [r2, #4*" #i "]\n  sxth r6, r5\n  asrs r5, r5, #16\n"                  \
    "  ldrb r4, [r0, #" #i "]\n  eors r4, r3\n  lsrs r7, r4, #4\n  muls r4, r6, r4\n" \
    "  muls r7, r5, r7\n  add r8, r4\n  add r8, r7\n"                                 \
    "  ldrb r4, [r1, #" #i "]\n  eors r4, r3\n  lsrs r7, r4, #4\n  muls r4, r6, r4\n" \
    "  muls r7, r5, r7\n  add r9, r4\n  add r9, r7\n"
__asm__(".syntax unified\n"
        ".text\n"
        ".thumb\n"
        ".balign 2\n"
        ".global q4_fc_pairs4_armv6m\n"
        ".thumb_func\n"
        ".type q4_fc_pairs4_armv6m, %function\n"
        "q4_fc_pairs4_armv6m:\n"
        "  push {r4, r5, r6, r7, lr}\n"
        "  mov r4, r8\n  mov r5, r9\n  mov r6, r10\n  push {r4, r5, r6}\n"
        "  mov r10, r3\n  movs r4, #0\n  mov r8, r4\n  mov r9, r4\n  movs r3, #0x88\n"
        "1:\n" Q4_FC_BYTE(0) Q4_FC_BYTE(1) Q4_FC_BYTE(2)
            Q4_FC_BYTE(3) "  adds r0, #4\n  adds r1, #4\n  adds r2, #16\n  cmp r2, r10\n  bne 1b\n"
                          "  mov r0, r8\n  mov r1, r9\n"
                          "  pop {r4, r5, r6}\n  mov r8, r4\n  mov r9, r5\n  mov r10, r6\n"
                          "  pop {r4, r5, r6, r7, pc}\n"
                          ".size q4_fc_pairs4_armv6m, .-q4_fc_pairs4_armv6m\n");
#undef Q4_FC_BYTE
#endif

static uint32_t q4_fc_row_pair(const uint8_t *row0, const uint8_t *row1, const int16_t *pairs,
                               int32_t n_bytes, uint32_t *sum1)
{
    uint32_t acc0 = 0u, acc1 = 0u;
    int32_t j = 0;
#ifdef Q4_FC_ASM
    if (n_bytes >= 4) {
        const int32_t n = n_bytes & ~3;
        const uint64_t sums = q4_fc_pairs4_armv6m(row0, row1, pairs, pairs + 2 * n);
        acc0 = (uint32_t)sums;
        acc1 = (uint32_t)(sums >> 32);
        pairs += 2 * n;
        j = n;
    }
#endif
    for (; j < n_bytes; ++j, pairs += 2) {
        const uint32_t c0 = row0[j] ^ 0x88u, c1 = row1[j] ^ 0x88u;
        const uint32_t x0 = (uint32_t)(int32_t)pairs[0], d = (uint32_t)(int32_t)pairs[1];
        acc0 += c0 * x0 + (c0 >> 4) * d;
        acc1 += c1 * x0 + (c1 >> 4) * d;
    }
    *sum1 = acc1;
    return acc0;
}

void q4_fully_connected_s4_armv6m(const q4_fc_params *params, const q4_quant_params *quant,
                                  int32_t input_size, const int8_t *input,
                                  const uint8_t *filter, const int32_t *bias,
                                  int32_t output_size, int8_t *output, int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    int16_t *const pairs = (int16_t *)(void *)scratch;
    uint32_t offset = 0u; /* 8 * sum(x') */
    int32_t j, o;

    for (j = 0; j < row_bytes; ++j) {
        const int32_t x0 = input[2 * j] - params->input_zp;
        const int32_t x1 = 2 * j + 1 < input_size ? input[2 * j + 1] - params->input_zp : 0;
        pairs[2 * j] = (int16_t)x0;
        pairs[2 * j + 1] = (int16_t)(x1 - 16 * x0);
        offset += 8u * (uint32_t)(x0 + x1);
    }
    for (o = 0; o < output_size; o += 2) {
        const uint8_t *row0 = filter + o * row_bytes;
        const int32_t last = o + 1 == output_size; /* an odd last row pairs with itself */
        uint32_t sum1;
        const uint32_t sum0 = q4_fc_row_pair(row0, last ? row0 : row0 + row_bytes, pairs,
                                             row_bytes, &sum1);
        output[o] = q4_armv6m_requantize_clamp(
            q4_armv6m_int32((uint32_t)bias[o] + sum0 - offset), quant->multiplier[o],
            quant->shift[o], params->output_zp, params->act_min, params->act_max);
        if (!last) {
            output[o + 1] = q4_armv6m_requantize_clamp(
                q4_armv6m_int32((uint32_t)bias[o + 1] + sum1 - offset), quant->multiplier[o + 1],
                quant->shift[o + 1], params->output_zp, params->act_min, params->act_max);
        }
    }
}
