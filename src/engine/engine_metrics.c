/* GET /metrics: llama-server's Prometheus text, served only with --metrics. */
#include "engine_internal.h"

#include "http_server.h"

#include <stdio.h>
#include <stdlib.h>

/*
 * llama-server computes its throughput gauges over the interval since the previous scrape;
 * here they are averages over the process's life, which stays meaningful with several
 * scrapers. The KV figures count the cells held by the slots' sequences (cached prefixes
 * included) against the whole context.
 */

/* One metric line with its HELP and TYPE header. */
struct metric {
    const char *name;
    const char *type;
    const char *help;
    double value;
};

void eng_metrics_reply(struct engine *e, struct http_request *req)
{
    struct eng_metrics m;
    int n_busy = 0;

    pthread_mutex_lock(&e->mu);
    m = e->metrics;
    for (int i = 0; i < e->opts->n_parallel; i++)
        n_busy += e->slot_busy[i] ? 1 : 0;
    pthread_mutex_unlock(&e->mu);

    const struct metric metrics[] = {
        {"prompt_tokens_total", "counter", "Number of prompt tokens processed.",
         (double)m.n_prompt_tokens},
        {"prompt_seconds_total", "counter", "Prompt process time", m.prompt_ms / 1000.0},
        {"tokens_predicted_total", "counter", "Number of generation tokens processed.",
         (double)m.n_predicted_tokens},
        {"tokens_predicted_seconds_total", "counter", "Predict process time",
         m.predicted_ms / 1000.0},
        {"n_decode_total", "counter", "Total number of llama_decode() calls", (double)m.n_decode},
        {"n_busy_slots_per_decode", "counter",
         "Average number of busy slots per llama_decode() call",
         m.n_decode > 0 ? (double)m.n_busy_slots / (double)m.n_decode : 0.0},
        {"prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
         m.prompt_ms > 0 ? 1000.0 * (double)m.n_prompt_tokens / m.prompt_ms : 0.0},
        {"predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
         m.predicted_ms > 0 ? 1000.0 * (double)m.n_predicted_tokens / m.predicted_ms : 0.0},
        {"kv_cache_usage_ratio", "gauge", "KV-cache usage. 1 means 100 percent usage.",
         e->n_ctx > 0 ? (double)m.n_kv_tokens / (double)e->n_ctx : 0.0},
        {"kv_cache_tokens", "gauge", "KV-cache tokens.", (double)m.n_kv_tokens},
        {"requests_processing", "gauge", "Number of requests processing.", (double)n_busy},
        {"requests_deferred", "gauge", "Number of requests deferred.", (double)m.n_deferred},
    };
    struct eng_text out = {0};
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        char line[512];
        const struct metric *x = &metrics[i];
        int n = snprintf(line, sizeof(line),
                         "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %.10g\n",
                         x->name, x->help, x->name, x->type, x->name, x->value);
        if (n < 0 || (size_t)n >= sizeof(line) || eng_text_append(&out, line, (size_t)n) != 0) {
            eng_text_release(&out);
            eng_reply_error(req, 500, "server_error", "out of memory");
            return;
        }
    }
    http_respond(req, 200, "text/plain; version=0.0.4", out.data, out.len);
    eng_text_release(&out);
}
