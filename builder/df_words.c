/* df_words.c - the Dockerfile's line tokenizers: one word scanner for the
 * flags and parseWords, the whitespace split and the JSON exec form.
 *
 * BuildKit has two look-alike state machines (extractBuilderFlags and
 * parseWords) that differ only in what they keep: flags lose their quotes
 * and escapes, parseWords keeps both and treats the escape as literal inside
 * single quotes. One scanner with a `raw` switch serves both. */
#include <jansson.h>
#include <string.h>

#include "df_int.h"

typedef struct scan {
    const char *s;
    size_t len, pos;
    char esc;
    bool raw;    /* keep quotes and escapes (parseWords) */
    bool quoted; /* some part of the last word was quoted */
    cs_buf w;    /* the last word */
} scan;

static void
skip_blanks(scan *sc)
{
    while (sc->pos < sc->len && df_is_ws((unsigned char) sc->s[sc->pos]))
        sc->pos++;
}

/* Reads the word at sc->pos (not blank), up to the unquoted blank after it
 * (not consumed) or the end, and returns it (valid until the next call). A
 * trailing escape is dropped. sc->quoted tells "" (a word) from nothing. */
static const char *
scan_word(scan *sc)
{
    char quote = 0;
    sc->quoted = false;
    sc->w.len = 0;
    while (sc->pos < sc->len) {
        char ch = sc->s[sc->pos];
        if (!quote && df_is_ws((unsigned char) ch))
            break;
        sc->pos++;
        if (ch == quote || (!quote && (ch == '\'' || ch == '"'))) {
            quote = quote ? 0 : ch;
            sc->quoted = true;
            if (sc->raw)
                cs_buf_u8(&sc->w, (uint8_t) ch);
            continue;
        }
        if (ch == sc->esc && !(sc->raw && quote == '\'')) {
            if (sc->pos == sc->len)
                break;
            if (sc->raw)
                cs_buf_u8(&sc->w, (uint8_t) ch);
            ch = sc->s[sc->pos++];
        }
        cs_buf_u8(&sc->w, (uint8_t) ch);
    }
    return df_buf_str(&sc->w);
}

static bool
at_flag(const scan *sc)
{
    return sc->pos + 1 < sc->len && sc->s[sc->pos] == '-' && sc->s[sc->pos + 1] == '-';
}

static void
add_flag(cs_df_instr *in, const char *word)
{
    const char *name = word + 2;
    const char *eq = strchr(name, '=');
    in->flags = cs_xrealloc(in->flags, (in->nflags + 1) * sizeof(cs_df_flag));
    cs_df_flag *f = &in->flags[in->nflags++];
    f->name = cs_xstrndup(name, eq ? (size_t) (eq - name) : strlen(name));
    f->value = eq ? cs_xstrdup(eq + 1) : NULL;
}

const char *
df_read_flags(const char *s, char esc, cs_df_instr *in)
{
    scan sc = { .s = s, .len = strlen(s), .esc = esc, .raw = false };
    cs_buf_init(&sc.w);
    for (skip_blanks(&sc); at_flag(&sc); skip_blanks(&sc)) {
        const char *word = scan_word(&sc);
        if (strcmp(word, "--") == 0)
            break;
        add_flag(in, word);
    }
    cs_buf_release(&sc.w);
    return s + sc.pos;
}

void
df_split_words(const char *s, char esc, cs_strv *out)
{
    scan sc = { .s = s, .len = strlen(s), .esc = esc, .raw = true };
    cs_buf_init(&sc.w);
    for (skip_blanks(&sc); sc.pos < sc.len; skip_blanks(&sc)) {
        const char *word = scan_word(&sc);
        if (sc.quoted || *word)
            cs_strv_add(out, word);
    }
    cs_buf_release(&sc.w);
}

void
df_split_ws(const char *s, cs_strv *out)
{
    const char *p = s;
    while (*p) {
        while (*p && df_is_sep((unsigned char) *p))
            p++;
        if (!*p)
            break;
        const char *b = p;
        while (*p && !df_is_sep((unsigned char) *p))
            p++;
        cs_strv_push(out, cs_xstrndup(b, (size_t) (p - b)));
    }
}

int
df_parse_json(const char *s, cs_strv *out)
{
    while (df_is_ws((unsigned char) *s))
        s++;
    if (*s != '[')
        return DF_JSON_NOT;
    json_error_t jerr;
    json_t *a = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!a)
        return DF_JSON_NOT;
    int rc = json_is_array(a) ? DF_JSON_OK : DF_JSON_NOT;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            rc = DF_JSON_NOT_STRINGS;
    }
    if (rc == DF_JSON_OK)
        json_array_foreach(a, i, v)
        {
            cs_strv_add(out, json_string_value(v));
        }
    json_decref(a);
    return rc;
}
