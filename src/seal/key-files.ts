/** The names of site key files, apart from the module that parses them (and loads age). */
export const IDENTITY_SUFFIX = '.identity';
export const RECIPIENT_SUFFIX = '.recipient';
