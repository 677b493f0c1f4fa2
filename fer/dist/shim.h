// C interface of shim.cpp (see there). Every function returning char*
// returns NULL on success or a malloc'd error message (free it with
// fer_c10d_free).
#ifndef FER_DIST_SHIM_H
#define FER_DIST_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void fer_c10d_free(void* p);
char* fer_c10d_init_process_group(const char* addr, int port, int rank, int world_size, int agent_store,
                                  int restart_count, int backend, int64_t timeout_ms, const char* gloo_ifname,
                                  const char* gloo_host, int cuda_device, void** out);
void fer_c10d_pg_free(void* pg);
char* fer_c10d_allreduce(void* pg, void** ts, int n, int op);
char* fer_c10d_broadcast(void* pg, void** ts, int n, int root);
char* fer_c10d_broadcast_coalesced(void* pg, void** ts, int n, int root, int64_t bucket_bytes);
char* fer_c10d_barrier(void* pg);
char* fer_c10d_allreduce_f64(void* pg, double* vals, int n, int op);
char* fer_c10d_broadcast_bytes(void* pg, int root, const uint8_t* data, int64_t len, uint8_t** out,
                               int64_t* out_len);
char* fer_c10d_allgather_bytes(void* pg, const uint8_t* data, int64_t len, uint8_t** out, int64_t* lens);
char* fer_c10d_allreduce_grads(void* pg, void** params, int n, int64_t bucket_bytes);
char* fer_c10d_verify_params(void* pg, void** params, int n);
char* fer_c10d_reducer_new(void* pg, void** params, const char** names, int n, int64_t bucket_bytes,
                           int64_t first_bucket_bytes, int find_unused, void** out);
void fer_c10d_reducer_free(void* r);
char* fer_c10d_reducer_prepare_forward(void* r);
char* fer_c10d_reducer_rebuild_buckets(void* r);
char* fer_c10d_reducer_prepare_backward(void* r, void** outputs, int n);

#ifdef __cplusplus
}
#endif

#endif
