/** Name and version on the wire (presence, status) and in `--version`. */
export const SOFTWARE = 'talkbridge/0.1';
