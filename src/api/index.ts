export * from './constants.js';
export * from './generated/pullstatepolicy.js';
export * from './generated/pullstaterestore.js';
export * from './crd-schema.js';
export * from './resolved-spec.js';
export * from './annotations.js';
export * from './helper-api.js';
