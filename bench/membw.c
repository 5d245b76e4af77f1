/* The machine's memory read bandwidth: what a decode step that streams its weights from DRAM can reach.

     gcc -O3 -march=native -pthread bench/membw.c -o /tmp/membw && /tmp/membw

   Sums a 1 GB buffer (larger than any cache) with 256-bit loads, on 1 and then 2 threads (each its own
   half), 3 times each, and prints GB/s. Native code, so an upper bound for wasm's 128-bit loads too. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N (1000L * 1000 * 1000)
static unsigned char *buf;
static int nth;
static long long sums[2];

static void *run(void *arg) {
  long id = (long)arg, n = N / nth;
  const __m256i *p = (const __m256i *)(buf + id * n);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0;
  for (long i = 0; i + 1 < n / 32; i += 2) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(p + i));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(p + i + 1));
  }
  long long r[4];
  _mm256_storeu_si256((__m256i *)r, _mm256_add_epi64(s0, s1));
  sums[id] = r[0] + r[1] + r[2] + r[3];  /* kept, so the loop is not optimized away */
  return NULL;
}

int main(void) {
  buf = aligned_alloc(64, N);
  memset(buf, 1, N);
  for (nth = 1; nth <= 2; nth++) {
    for (int rep = 0; rep < 3; rep++) {
      struct timespec a, b;
      pthread_t t[2];
      clock_gettime(CLOCK_MONOTONIC, &a);
      for (long i = 0; i < nth; i++) pthread_create(&t[i], NULL, run, (void *)i);
      for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
      clock_gettime(CLOCK_MONOTONIC, &b);
      double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
      printf("threads %d: %.1f GB/s (checksum %lld)\n", nth, N / s / 1e9, sums[0] + sums[1]);
    }
  }
  return 0;
}
