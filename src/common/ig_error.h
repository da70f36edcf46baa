/* One error table for the whole program: 0 or a negative IG_E* code. */
#ifndef IG_ERROR_H
#define IG_ERROR_H

#define IG_WUR __attribute__((warn_unused_result))

/* X-macro: name, message. Codes are the negated position + 1. */
#define IG_ERROR_TABLE(X)                                                                          \
    X(ENOMEM, "out of memory")                                                                     \
    X(EINVAL, "invalid argument")                                                                  \
    X(EIO, "input/output error")                                                                   \
    X(ENOENT, "not found")                                                                         \
    X(ETOOBIG, "too large")                                                                        \
    X(ETIMEDOUT, "timed out")                                                                      \
    X(EBUSY, "busy")                                                                               \
    X(EPROTO, "protocol error")                                                                    \
    X(ECANCELED, "canceled")                                                                       \
    X(ECONFIG, "invalid configuration")                                                            \
    X(ESPAWN, "cannot start process")

enum ig_error {
    IG_OK = 0,
#define IG_ERROR_ENUM(name, msg) IG_##name##_POS,
    IG_ERROR_TABLE(IG_ERROR_ENUM)
#undef IG_ERROR_ENUM
};

#define IG_ERROR_CODE(name) (-(IG_##name##_POS))
#define IG_ENOMEM IG_ERROR_CODE(ENOMEM)
#define IG_EINVAL IG_ERROR_CODE(EINVAL)
#define IG_EIO IG_ERROR_CODE(EIO)
#define IG_ENOENT IG_ERROR_CODE(ENOENT)
#define IG_ETOOBIG IG_ERROR_CODE(ETOOBIG)
#define IG_ETIMEDOUT IG_ERROR_CODE(ETIMEDOUT)
#define IG_EBUSY IG_ERROR_CODE(EBUSY)
#define IG_EPROTO IG_ERROR_CODE(EPROTO)
#define IG_ECANCELED IG_ERROR_CODE(ECANCELED)
#define IG_ECONFIG IG_ERROR_CODE(ECONFIG)
#define IG_ESPAWN IG_ERROR_CODE(ESPAWN)

/* Returns the static message for an IG_E* code (or "success" for 0). */
const char *ig_strerror(int code);

#endif
