/* Messages for the error table in ig_error.h. */
#include "ig_error.h"

static const char *const messages[] = {
    "success",
#define IG_ERROR_MSG(name, msg) msg,
    IG_ERROR_TABLE(IG_ERROR_MSG)
#undef IG_ERROR_MSG
};

const char *ig_strerror(int code)
{
    int pos = -code;
    if (pos < 0 || pos >= (int)(sizeof(messages) / sizeof(messages[0])))
        return "unknown error";
    return messages[pos];
}
